"""The ``catchup`` scenario: events queued while the analytics subscriber is stopped, then
drained: events/s, and exactly-once (ledger rows == events == behaviour records, aggregates ==
event counts). The reference is a bare redis-py ``XREADGROUP``/``XACK`` reader of the same
entries (no database)."""

from __future__ import annotations

import math
import time
from typing import Any

from bench.load import LoadPlan, run_load
from bench.measure import CpuWindow, per_1000
from bench.run import Run, client_opts, safe
from bench.stack import ParleyStack

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
    load_opts = client_opts(
        max(60.0, cfg.catchup_events / 100), rate=None, window=32, max_messages=per_sender
    )
    plan = LoadPlan(
        senders=[
            {"url": stack.ws_url(slug), "token": stack.tokens[i % len(stack.tokens)]}
            for i in range(senders)
        ]
    )
    print(f"  catchup: analytics stopped; posting {per_sender * senders} messages ...", flush=True)
    produced = run_load(plan, stack.processes, load_opts)
    queued = stack.sql("SELECT COUNT(*) FROM chat_outboxevent WHERE id > ?", (top0,))[0][0]
    print(f"  catchup: {queued} events queued; raw reference drain ...", flush=True)
    raw = safe(lambda: _raw_drain(stack, start_ids), "raw")

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
