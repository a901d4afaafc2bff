"""The steady-state scenarios and the list of every scenario. Each returns rows (dicts) for the
report: Parley and the raw reference.

1. fanout          one room, N listeners, one sender at 20 msg/s
2. throughput      10 listeners, 10 senders as fast as the server acknowledges (SQLite, PostgreSQL)
3. idle            N idle sockets vs N clients polling the REST history every 1 s: server CPU per
                   second while nothing is posted, then the latency each gives for a 1 msg/s trickle
4. scaleout        fan-out with the listeners split over two server processes
5. catchup         events queued while the analytics subscriber is stopped, then drained
                   (bench/catchup.py)
6. connect_storm   N sockets connecting at once while a sender posts (bench/storms.py)
7. reconnect_wave  N connected listeners dropped at once, reconnecting with back-off and resume
                   while a sender posts (bench/storms.py)

Parley's rows are measured on each ASGI server of ``--servers`` (daphne, the default server,
and uvicorn, the option); the raw reference runs once per measurement.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import catchup, storms
from bench.clients import close_socket, open_socket
from bench.load import LoadPlan, run_load
from bench.measure import CpuWindow, rss_mib
from bench.mux import mux
from bench.run import Run, client_opts, listener_plan, make_row, safe, target_label
from bench.stack import RawStack

SCENARIOS = (
    "fanout",
    "throughput",
    "idle",
    "scaleout",
    "catchup",
    "connect_storm",
    "reconnect_wave",
    "mux",
)
DEFAULT_SCENARIOS = SCENARIOS[:-1]  # without --scenarios (make bench): mux is asked for by name
QUICK_SCENARIOS = tuple(s for s in DEFAULT_SCENARIOS if s != "scaleout")  # --quick, no --scenarios


def _fanout_once(
    run: Run, scenario: str, target: str, n: int, servers: int = 1, server: str = "daphne"
) -> dict:
    cfg = run.cfg
    opts = client_opts(cfg.fanout_seconds, rate=cfg.fanout_rate)
    label = target if target == "raw" else target_label(server)
    if servers > 1:
        label = f"{label} x{servers}"
    print(f"  {scenario}: {label}, {n} listeners ...", flush=True)
    if target == "raw":
        with RawStack(run.out_dir) as raw:
            plan = listener_plan(raw, "", n, cfg.client_procs)
            result = run_load(plan, raw.processes, opts)
    else:
        stack = run.parley(server=server)
        slug = f"{scenario}-{n}-{servers}"
        stack.create_room(slug, stack.tokens)
        plan = listener_plan(stack, slug, n, cfg.client_procs, servers)
        result = run_load(plan, stack.processes, opts)
    return make_row(
        scenario, label, result, listeners_n=n, rate=cfg.fanout_rate, server=server, servers=servers
    )


def fanout(run: Run) -> list[dict]:
    rows = []
    for server in run.cfg.servers:
        for n in run.cfg.fanout_sizes:
            rows.append(
                safe(
                    lambda n=n, s=server: _fanout_once(run, "fanout", "parley", n, server=s),
                    target_label(server),
                )
            )
    for n in run.cfg.fanout_sizes:
        rows.append(safe(lambda n=n: _fanout_once(run, "fanout", "raw", n), "raw"))
    return rows


def throughput(run: Run) -> list[dict]:
    cfg = run.cfg
    opts = client_opts(cfg.throughput_seconds, rate=None, window=16)
    rows = []

    def plan_for(stack, slug: str) -> LoadPlan:
        plan = listener_plan(stack, slug, cfg.throughput_listeners, 2)
        plan.senders = [
            {"url": stack.ws_url(slug), "token": stack.tokens[i % len(stack.tokens)]}
            for i in range(cfg.throughput_senders)
        ]
        return plan

    def parley(database: str, server: str) -> dict:
        label = f"{target_label(server)} {database}"
        print(f"  throughput: {label} ...", flush=True)
        stack = run.parley(database, server)
        slug = f"throughput-{database}"
        stack.create_room(slug, stack.tokens)
        result = run_load(plan_for(stack, slug), stack.processes, opts)
        return make_row("throughput", label, result, database=database, server=server)

    def raw() -> dict:
        print("  throughput: raw ...", flush=True)
        with RawStack(run.out_dir) as stack:
            result = run_load(plan_for(stack, ""), stack.processes, opts)
        return make_row("throughput", "raw", result)

    for server in cfg.servers:
        for database in cfg.throughput_databases:
            rows.append(safe(lambda d=database, s=server: parley(d, s), f"parley {database}"))
    rows.append(safe(raw, "raw"))
    for row in rows:
        if "error" not in row and row.get("senders"):
            seconds = row["senders"]["confirm_seconds"]  # go -> the last post acknowledged
            row["messages_per_s"] = round(row["messages"] / max(seconds, 1e-9), 1)
    return rows


def idle(run: Run) -> list[dict]:
    """Idle window first (before ``go``: nothing is posted), then a 1 msg/s trickle."""
    cfg = run.cfg
    n = cfg.idle_clients
    opts = client_opts(
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
                plan = listener_plan(raw, "", n, cfg.client_procs)
                before = _warm_up(plan, raw.processes)
                plan.before_go = lambda procs: idle_window(procs, before)
                result = run_load(plan, raw.processes, opts)
            return make_row("idle", target, result, clients=n)
        server = cfg.servers[-1] if target.startswith("parley uvicorn") else cfg.servers[0]
        run.close()  # a fresh stack: the memory a socket adds is measured from a clean start
        stack = run.parley(server=server)
        slug = "idle-push" if " push" in target else "idle-poll"
        stack.create_room(slug, stack.tokens)
        plan = listener_plan(stack, slug, n, cfg.client_procs)
        before = _warm_up(plan, stack.processes)
        if target.endswith("poll 1s"):
            plan.pollers, plan.listeners = plan.listeners, []
            for spec in plan.pollers:
                spec["url"] = stack.messages_url(slug)
        plan.before_go = lambda procs: idle_window(procs, before)
        return make_row("idle", target, run_load(plan, stack.processes, opts), clients=n)

    targets = [f"{target_label(server)} push" for server in cfg.servers]
    targets.insert(1, f"{target_label(cfg.servers[0])} poll 1s")
    return [safe(lambda t=t: once(t), t) for t in (*targets, "raw push")]


WARM_UP_SOCKETS = 20


def _warm_up(plan: LoadPlan, processes: dict[str, int]) -> dict[str, float]:
    """Open and close ``WARM_UP_SOCKETS`` sockets like the plan's listeners, then the servers'
    RSS: what the idle sockets add is measured from a server that has served sockets before,
    so one-off costs (modules and code paths first used, thread pools, the first database
    connection, allocator arenas) are not counted as per-socket memory."""
    spec = plan.listeners[0]

    async def open_and_close() -> None:
        sockets = await asyncio.gather(
            *(open_socket(spec["url"], spec["token"], 30) for _ in range(WARM_UP_SOCKETS))
        )
        await asyncio.gather(*(close_socket(ws) for ws, _ in sockets))

    asyncio.run(open_and_close())
    time.sleep(2)  # the servers' disconnect handling ends
    return _server_rss(processes)


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
            safe(lambda s=server: _fanout_once(run, "scaleout", "parley", n, server=s), server)
        )
        stack = run.parley(server=server)
        stack.add_server(len(stack.ports))
        try:
            rows.append(
                safe(
                    lambda s=server: _fanout_once(
                        run, "scaleout", "parley", n, servers=2, server=s
                    ),
                    f"{server} x2",
                )
            )
        finally:
            stack.stop(f"{server}{len(stack.ports) - 1}")
            stack.ports.pop()
    rows.append(safe(lambda: _fanout_once(run, "scaleout", "raw", n), "raw"))
    return rows


RUNNERS = {
    "fanout": fanout,
    "throughput": throughput,
    "idle": idle,
    "scaleout": scaleout,
    "catchup": catchup.catchup,
    "connect_storm": storms.connect_storm,
    "reconnect_wave": storms.reconnect_wave,
    "mux": mux,
}
