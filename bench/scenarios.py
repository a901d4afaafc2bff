"""The scenarios. Each returns rows (dicts) for the report: Parley and the raw reference.

1. fanout      one room, N listeners, one sender at 20 msg/s
2. throughput  10 listeners, 10 senders as fast as the server acknowledges (SQLite, PostgreSQL)
3. idle        N idle sockets vs N clients polling the REST history every 1 s: server CPU per
               second while nothing is posted, then the latency each gives for a 1 msg/s trickle
4. scaleout    fan-out with the listeners split over two server processes

Parley's rows are measured on each ASGI server of ``--servers`` (daphne, the default server,
and uvicorn, the option); the raw reference runs once per measurement.
5. catchup     events queued while the analytics subscriber is stopped, then drained: events/s and
               exactly-once (ledger rows == events, aggregates match)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.clients import ClientOpts
from bench.load import LoadPlan, run_load, split
from bench.measure import CpuWindow, per_1000, rss_mib
from bench.mux import mux
from bench.stack import ParleyStack, RawStack, log_problems

SCENARIOS = ("fanout", "throughput", "idle", "scaleout", "catchup", "mux")
DEFAULT_SCENARIOS = SCENARIOS[:-1]  # without --scenarios (make bench): mux is asked for by name
QUICK_SCENARIOS = ("fanout", "throughput", "idle", "catchup")  # --quick without --scenarios
USERS = 8  # signed-up users: user 0 owns the rooms and sends in fan-out; the rest listen


@dataclass
class Config:
    quick: bool
    fanout_sizes: list[int]
    fanout_seconds: float
    throughput_seconds: float
    throughput_databases: list[str]
    idle_clients: int
    idle_seconds: float
    trickle_seconds: float
    scaleout_listeners: int
    catchup_events: int
    client_procs: int = 4
    fanout_rate: float = 20.0
    throughput_senders: int = 10
    throughput_listeners: int = 10
    servers: list[str] = field(default_factory=lambda: ["daphne", "uvicorn"])
    # mux (bench/mux.py): one socket x mux_rooms rooms; mux_sockets sockets x mux_per_socket
    mux_rooms: int = 1000
    mux_sockets: int = 1000
    mux_per_socket: int = 10
    mux_posts: int = 5

    @classmethod
    def make(cls, quick: bool, **overrides: Any) -> Config:
        if quick:
            cfg = cls(
                quick=True,
                fanout_sizes=[10, 100, 500],
                fanout_seconds=3,
                throughput_seconds=4,
                throughput_databases=["sqlite"],
                idle_clients=200,
                idle_seconds=6,
                trickle_seconds=3,
                scaleout_listeners=200,
                catchup_events=2_000,
                servers=["daphne"],  # the default server only: both would pass two minutes
            )
        else:
            cfg = cls(
                quick=False,
                fanout_sizes=[10, 100, 500, 1000],
                fanout_seconds=10,
                throughput_seconds=10,
                throughput_databases=["sqlite", "postgres"],
                idle_clients=1000,
                idle_seconds=30,
                trickle_seconds=10,
                scaleout_listeners=1000,
                catchup_events=100_000,
            )
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        return cfg


@dataclass
class Run:
    """Shared state of one benchmark run: the Parley stacks (started on first use)."""

    cfg: Config
    out_dir: Path
    stacks: dict[str, ParleyStack] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)  # of the stacks already stopped

    def parley(self, database: str = "sqlite", server: str = "daphne") -> ParleyStack:
        """The stack on ``database`` served by ``server``; any other stack is stopped first, so
        one stack at a time uses the machine."""
        key = f"{database}-{server}"
        if key not in self.stacks:
            self.close()
            print(f"  starting Parley on {database} with {server} ...", flush=True)
            t0 = time.monotonic()
            stack = ParleyStack(f"parley-{key}", self.out_dir, database=database, server=server)
            try:
                stack.create_users(USERS)
            except BaseException:
                stack.close()
                raise
            self.stacks[key] = stack
            print(f"  Parley ready in {time.monotonic() - t0:.1f}s", flush=True)
        return self.stacks[key]

    def close(self) -> None:
        for stack in self.stacks.values():
            stack.close()
            self.logs.extend(stack.logs)
        self.stacks.clear()

    def log_problems(self) -> dict[str, Any]:
        live = [p for s in self.stacks.values() for p in s.logs]
        return log_problems(self.logs + live)


def _opts(seconds: float, **kw: Any) -> ClientOpts:
    return ClientOpts(seconds=seconds, **kw)


def _row(scenario: str, target: str, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
    row = {"scenario": scenario, "target": target, **extra, **result}
    for kind in ("listeners", "pollers"):
        part = result.get(kind)
        if part:
            part["cpu_ms_per_1000_deliveries"] = per_1000(result["server_cpu_s"], part["received"])
            part["deliveries_per_s"] = (
                round(part["received"] / result["window_seconds"], 1)
                if result["window_seconds"]
                else None
            )
    return row


def _listener_plan(stack, slug: str, n: int, procs: int, servers: int = 1) -> LoadPlan:
    tokens = stack.tokens
    listeners = [
        {
            "count": count,
            "url": stack.ws_url(slug, server=i % servers),
            "token": tokens[1 + i % (len(tokens) - 1)] if len(tokens) > 1 else tokens[0],
        }
        for i, count in enumerate(split(n, procs))
    ]
    return LoadPlan(listeners=listeners, senders=[{"url": stack.ws_url(slug), "token": tokens[0]}])


def _label(server: str) -> str:
    return "parley" if server == "daphne" else f"parley {server}"


def _fanout_once(
    run: Run, scenario: str, target: str, n: int, servers: int = 1, server: str = "daphne"
) -> dict:
    cfg = run.cfg
    opts = _opts(cfg.fanout_seconds, rate=cfg.fanout_rate)
    label = target if target == "raw" else _label(server)
    if servers > 1:
        label = f"{label} x{servers}"
    print(f"  {scenario}: {label}, {n} listeners ...", flush=True)
    if target == "raw":
        with RawStack(run.out_dir) as raw:
            plan = _listener_plan(raw, "", n, cfg.client_procs)
            result = run_load(plan, raw.processes, opts)
    else:
        stack = run.parley(server=server)
        slug = f"{scenario}-{n}-{servers}"
        stack.create_room(slug, stack.tokens)
        plan = _listener_plan(stack, slug, n, cfg.client_procs, servers)
        result = run_load(plan, stack.processes, opts)
    return _row(
        scenario, label, result, listeners_n=n, rate=cfg.fanout_rate, server=server, servers=servers
    )


def fanout(run: Run) -> list[dict]:
    rows = []
    for server in run.cfg.servers:
        for n in run.cfg.fanout_sizes:
            rows.append(
                _safe(
                    lambda n=n, s=server: _fanout_once(run, "fanout", "parley", n, server=s),
                    _label(server),
                )
            )
    for n in run.cfg.fanout_sizes:
        rows.append(_safe(lambda n=n: _fanout_once(run, "fanout", "raw", n), "raw"))
    return rows


def throughput(run: Run) -> list[dict]:
    cfg = run.cfg
    opts = _opts(cfg.throughput_seconds, rate=None, window=16)
    rows = []

    def plan_for(stack, slug: str) -> LoadPlan:
        plan = _listener_plan(stack, slug, cfg.throughput_listeners, 2)
        plan.senders = [
            {"url": stack.ws_url(slug), "token": stack.tokens[i % len(stack.tokens)]}
            for i in range(cfg.throughput_senders)
        ]
        return plan

    def parley(database: str, server: str) -> dict:
        label = f"{_label(server)} {database}"
        print(f"  throughput: {label} ...", flush=True)
        stack = run.parley(database, server)
        slug = f"throughput-{database}"
        stack.create_room(slug, stack.tokens)
        result = run_load(plan_for(stack, slug), stack.processes, opts)
        return _row("throughput", label, result, database=database, server=server)

    def raw() -> dict:
        print("  throughput: raw ...", flush=True)
        with RawStack(run.out_dir) as stack:
            result = run_load(plan_for(stack, ""), stack.processes, opts)
        return _row("throughput", "raw", result)

    for server in cfg.servers:
        for database in cfg.throughput_databases:
            rows.append(_safe(lambda d=database, s=server: parley(d, s), f"parley {database}"))
    rows.append(_safe(raw, "raw"))
    for row in rows:
        if "error" not in row and row.get("senders"):
            seconds = row["senders"]["confirm_seconds"]  # go -> the last post acknowledged
            row["messages_per_s"] = round(row["messages"] / max(seconds, 1e-9), 1)
    return rows


def idle(run: Run) -> list[dict]:
    """Idle window first (before ``go``: nothing is posted), then a 1 msg/s trickle."""
    cfg = run.cfg
    n = cfg.idle_clients
    opts = _opts(
        cfg.trickle_seconds, rate=1.0, ready_timeout=cfg.idle_seconds + 180, drain_timeout=15
    )

    def idle_window(processes: dict[str, int], before: dict[str, float]) -> dict[str, Any]:
        window = CpuWindow(processes)
        time.sleep(cfg.idle_seconds)
        cpu = window.stop()
        total = sum(cpu.values())
        return {
            "idle_seconds": cfg.idle_seconds,
            "idle_cpu_s": round(total, 3),
            "idle_cpu_per_s": round(total / cfg.idle_seconds, 4),
            "idle_cpu_by_process_s": cpu,
            "idle_rss_mib": window.rss(),
            **_socket_memory(processes, before, n),
        }

    def once(target: str) -> dict:
        print(f"  idle: {target}, {n} clients, {cfg.idle_seconds:g}s idle ...", flush=True)
        if target == "raw push":
            with RawStack(run.out_dir) as raw:
                plan = _listener_plan(raw, "", n, cfg.client_procs)
                before = _server_rss(raw.processes)
                plan.before_go = lambda procs: idle_window(procs, before)
                result = run_load(plan, raw.processes, opts)
            return _row("idle", target, result, clients=n)
        server = cfg.servers[-1] if target.startswith("parley uvicorn") else cfg.servers[0]
        run.close()  # a fresh stack: the memory a socket adds is measured from a clean start
        stack = run.parley(server=server)
        before = _server_rss(stack.processes)
        slug = "idle-push" if " push" in target else "idle-poll"
        stack.create_room(slug, stack.tokens)
        plan = _listener_plan(stack, slug, n, cfg.client_procs)
        if target.endswith("poll 1s"):
            plan.pollers, plan.listeners = plan.listeners, []
            for spec in plan.pollers:
                spec["url"] = stack.messages_url(slug)
        plan.before_go = lambda procs: idle_window(procs, before)
        return _row("idle", target, run_load(plan, stack.processes, opts), clients=n)

    targets = [f"{_label(server)} push" for server in cfg.servers]
    targets.insert(1, f"{_label(cfg.servers[0])} poll 1s")
    return [_safe(lambda t=t: once(t), t) for t in (*targets, "raw push")]


def _server_rss(processes: dict[str, int]) -> dict[str, float]:
    """Current RSS (MiB) of the processes that hold the WebSockets (the ASGI servers, raw)."""
    return {
        name: rss_mib(pid) or 0.0
        for name, pid in processes.items()
        if name.rstrip("0123456789") in ("daphne", "uvicorn", "raw")
    }


def _socket_memory(processes: dict[str, int], before: dict[str, float], n: int) -> dict:
    """What ``n`` connected idle sockets added to the servers' RSS, in all and per socket."""
    now = _server_rss(processes)
    added = sum(now.values()) - sum(before.get(name, 0.0) for name in now)
    return {
        "socket_rss_before_mib": round(sum(before.values()), 1),
        "socket_rss_added_mib": round(added, 1),
        "kib_per_idle_socket": round(added * 1024 / n, 1) if n else None,
    }


def scaleout(run: Run) -> list[dict]:
    """The same fan-out on one and on two server processes (listeners alternate between them)."""
    n = run.cfg.scaleout_listeners
    rows = []
    for server in run.cfg.servers:
        rows.append(
            _safe(lambda s=server: _fanout_once(run, "scaleout", "parley", n, server=s), server)
        )
        stack = run.parley(server=server)
        stack.add_server(len(stack.ports))
        try:
            rows.append(
                _safe(
                    lambda s=server: _fanout_once(
                        run, "scaleout", "parley", n, servers=2, server=s
                    ),
                    f"{server} x2",
                )
            )
        finally:
            stack.stop(f"{server}{len(stack.ports) - 1}")
            stack.ports.pop()
    rows.append(_safe(lambda: _fanout_once(run, "scaleout", "raw", n), "raw"))
    return rows


# --- catch-up ------------------------------------------------------------------------------------

TOPICS = ("chat.message", "chat.room", "chat.presence")


def _ledger(stack: ParleyStack) -> int:
    q = "SELECT COUNT(*) FROM broker_processedevent WHERE subscriber = 'analytics'"
    return stack.sql(q)[0][0]


def _outbox(stack: ParleyStack) -> tuple[int, int]:
    count, top = stack.sql("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM chat_outboxevent")[0]
    return count, top


def _wait_ledger(stack: ParleyStack, want: int, limit: float, stall: float) -> tuple[int, float]:
    """Poll the ledger until it holds ``want`` rows (or no progress for ``stall`` s)."""
    t0 = time.monotonic()
    last, last_change = -1, t0
    while time.monotonic() - t0 < limit:
        got = _ledger(stack)
        now = time.monotonic()
        if got >= want:
            return got, now - t0
        if got != last:
            last, last_change = got, now
        elif now - last_change > stall:
            break
        time.sleep(0.25)
    return _ledger(stack), time.monotonic() - t0


def _raw_drain(stack: ParleyStack, start_ids: dict[str, bytes]) -> dict[str, Any]:
    """Reference: a bare redis-py consumer group reads and acks the same entries (no database)."""
    client = stack.redis_client()
    group = "bench-raw"
    try:
        for topic, start in start_ids.items():
            client.xgroup_create(topic, group, id=start)
        window = CpuWindow({"redis": stack.redis.proc.pid})
        cpu0 = time.process_time()
        t0 = time.monotonic()
        count = 0
        while time.monotonic() - t0 < 300:
            got = client.xreadgroup(group, "raw", dict.fromkeys(start_ids, ">"), count=200)
            entries = sum(len(items) for _, items in got)
            if not entries:
                break
            for stream, items in got:
                client.xack(stream, group, *[entry_id for entry_id, _ in items])
            count += entries
        seconds = time.monotonic() - t0
        cpu = window.stop()
        reader_cpu = time.process_time() - cpu0
        total = sum(cpu.values()) + reader_cpu
        return {
            "events": count,
            "drain_seconds": round(seconds, 3),
            "events_per_s": round(count / seconds, 1) if seconds else None,
            "server_cpu_s": round(total, 3),
            "server_cpu_by_process_s": {**cpu, "reader (this process)": round(reader_cpu, 3)},
            "cpu_ms_per_1000_events": per_1000(total, count),
        }
    finally:
        for topic in start_ids:
            try:
                client.xgroup_destroy(topic, group)
            except Exception as exc:  # noqa: BLE001 - cleanup of a private Redis
                print(f"  (could not remove group {group} on {topic}: {exc})")
        client.close()


def _catchup_checks(stack: ParleyStack) -> dict[str, Any]:
    """Exactly-once: ledger rows == events == behaviour records; aggregates == event counts."""
    by_type = dict(stack.sql("SELECT type, COUNT(*) FROM chat_outboxevent GROUP BY type"))
    events = sum(by_type.values())
    one = lambda q: stack.sql(q)[0][0] or 0  # noqa: E731
    ledger = one("SELECT COUNT(*) FROM broker_processedevent WHERE subscriber = 'analytics'")
    distinct = one(
        "SELECT COUNT(DISTINCT event_id) FROM broker_processedevent WHERE subscriber = 'analytics'"
    )
    created = by_type.get("message.created", 0)
    figures = {
        "events_in_outbox": events,
        "ledger_rows": ledger,
        "ledger_distinct_event_ids": distinct,
        "behaviour_records": one("SELECT COUNT(*) FROM analytics_behaviourrecord"),
        "message_created_events": created,
        "room_minute_messages": one("SELECT SUM(messages) FROM analytics_roomminute"),
        "user_minute_messages": one("SELECT SUM(messages) FROM analytics_userminute"),
        "latency_minute_count": one("SELECT SUM(count) FROM analytics_latencyminute"),
        "room_joined_events": by_type.get("room.joined", 0),
        "room_minute_joins": one("SELECT SUM(joins) FROM analytics_roomminute"),
        "user_connected_events": by_type.get("user.connected", 0),
        "room_minute_connects": one("SELECT SUM(connects) FROM analytics_roomminute"),
    }
    pairs = [
        ("ledger_rows", "events_in_outbox"),
        ("ledger_distinct_event_ids", "events_in_outbox"),
        ("behaviour_records", "events_in_outbox"),
        ("room_minute_messages", "message_created_events"),
        ("user_minute_messages", "message_created_events"),
        ("latency_minute_count", "message_created_events"),
        ("room_minute_joins", "room_joined_events"),
        ("room_minute_connects", "user_connected_events"),
    ]
    mismatches = {a: [figures[a], figures[b]] for a, b in pairs if figures[a] != figures[b]}
    return {**figures, "mismatches": mismatches, "exactly_once": not mismatches}


def catchup(run: Run) -> list[dict]:
    cfg = run.cfg
    stack = run.parley()
    rows: list[dict] = []
    # 1. Analytics is caught up with everything so far.
    count, _ = _outbox(stack)
    got, _ = _wait_ledger(stack, count, limit=120, stall=30)
    if got < count:
        return [{"scenario": "catchup", "target": "parley", "error": f"ledger {got} < {count}"}]
    client = stack.redis_client()
    try:
        start_ids = {}
        for topic in TOPICS:
            groups = {g["name"]: g for g in client.xinfo_groups(topic)}
            start_ids[topic] = groups[b"analytics" if b"analytics" in groups else "analytics"][
                "last-delivered-id"
            ]
    finally:
        client.close()
    ledger0 = _ledger(stack)
    _, top0 = _outbox(stack)

    # 2. Stop analytics, produce events through the product (10 WebSocket senders, closed loop).
    stack.stop("consume-analytics")
    slug = "catchup"
    stack.create_room(slug, stack.tokens)
    senders = cfg.throughput_senders
    per_sender = math.ceil(cfg.catchup_events / senders)
    opts = _opts(max(60.0, cfg.catchup_events / 100), rate=None, window=32, max_messages=per_sender)
    plan = LoadPlan(
        senders=[
            {"url": stack.ws_url(slug), "token": stack.tokens[i % len(stack.tokens)]}
            for i in range(senders)
        ]
    )
    print(f"  catchup: analytics stopped; posting {per_sender * senders} messages ...", flush=True)
    produced = run_load(plan, stack.processes, opts)
    queued = stack.sql("SELECT COUNT(*) FROM chat_outboxevent WHERE id > ?", (top0,))[0][0]
    print(f"  catchup: {queued} events queued; raw reference drain ...", flush=True)
    raw = _safe(lambda: _raw_drain(stack, start_ids), "raw")

    # 3. Start analytics again and time the drain.
    print("  catchup: analytics started, draining ...", flush=True)
    stack.start_consumer("analytics")
    window = CpuWindow(stack.processes)
    window.start["consume-analytics"] = 0.0  # its start-up counts: it is part of catching up
    got, seconds = _wait_ledger(stack, ledger0 + queued, limit=max(120.0, queued / 50), stall=60)
    cpu = window.stop()
    processed = got - ledger0
    checks = _catchup_checks(stack)
    server_cpu = sum(cpu.values())
    rows.append(
        {
            "scenario": "catchup",
            "target": "parley analytics",
            "events": queued,
            "processed": processed,
            "produce_seconds": produced["window_seconds"],
            "produce_messages": produced["messages"],
            "produce_messages_per_s": round(
                produced["messages"] / max(produced["window_seconds"], 1e-9), 1
            ),
            "drain_seconds": round(seconds, 3),
            "events_per_s": round(processed / seconds, 1) if seconds else None,
            "server_cpu_s": round(server_cpu, 3),
            "server_cpu_by_process_s": cpu,
            "peak_rss_by_process_mib": window.rss(),
            "cpu_ms_per_1000_events": per_1000(server_cpu, processed),
            **checks,
        }
    )
    raw.setdefault("target", "raw XREADGROUP")
    raw["scenario"] = "catchup"
    raw.setdefault("events", queued)
    rows.append(raw)
    return rows


def _safe(fn, target: str) -> dict:
    """One measurement; a failure becomes a row with its error, the run goes on."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported in the table and the JSON
        print(f"  ERROR ({target}): {exc}", flush=True)
        return {"target": target, "error": f"{type(exc).__name__}: {exc}"[:2000]}


RUNNERS = {
    "fanout": fanout,
    "throughput": throughput,
    "idle": idle,
    "scaleout": scaleout,
    "catchup": catchup,
    "mux": mux,
}
