"""The staff dashboard's figures and charts, and pushing them live.

The analytics subscriber calls ``push_after_commit`` after each batch; pushes are throttled to
one per ``PUSH_EVERY_SECONDS`` per process (longer when a snapshot is slow, see
``MAX_SHARE``) and always show the latest batch. Nothing is sent while nothing happens (push, not
poll), and nothing is computed while no dashboard is open.
"""

from __future__ import annotations

import threading
import time

from django.db import close_old_connections, transaction

from analytics import charts, selectors
from broker import push, registry
from broker.stats import subscriber_stats
from contract.events import dashboard_frame
from infra.redis_client import get_redis

GROUP = "dashboard"
PUSH_EVERY_SECONDS = 1.0
# The pushes run in the analytics worker's process: they may take at most this share of its
# time. A snapshot that took 0.2 s (a large backlog to count on a Redis without XINFO lag)
# spaces the next push 2 s out, so a catching-up worker is not slowed by its own dashboard.
MAX_SHARE = 0.1
WINDOW_MINUTES = 30

_lock = threading.Lock()
_last_push = 0.0
_last_cost = 0.0  # seconds the latest snapshot took
_pending: threading.Timer | None = None


def snapshot() -> dict:
    summary = selectors.summary(minutes=WINDOW_MINUTES)
    minutes = summary["minutes"]
    label = [m["minute"][11:16] for m in minutes]
    latency = summary["latency"]
    subscribers = {
        name: subscriber_stats(get_redis(), sub) for name, sub in registry.subscribers().items()
    }
    return {
        "figures": {
            "messages": summary["totals"]["messages"],
            "active_users": summary["totals"]["active_users"],
            "open_connections": summary["connections"]["open"],
            "latency_p50_ms": latency["p50_ms"],
            "latency_p95_ms": latency["p95_ms"],
            "dead_letters": sum(s["dead"] for s in subscribers.values()),
        },
        "subscribers": subscribers,
        "charts": {
            "messages": charts.line_chart(
                list(zip(label, [m["messages"] for m in minutes], strict=True)),
                labelledby="chart-messages-title",
            ),
            "active": charts.line_chart(
                list(zip(label, [m["active_users"] for m in minutes], strict=True)),
                labelledby="chart-active-title",
            ),
            "rooms": charts.bar_chart(
                [(r["room"], r["messages"]) for r in summary["top_rooms"]],
                labelledby="chart-rooms-title",
            ),
            "lag": charts.bar_chart(
                [(name, s["lag"]) for name, s in subscribers.items()],
                labelledby="chart-lag-title",
            ),
        },
    }


def frame() -> str:
    return dashboard_frame(snapshot())


def push_after_commit() -> None:
    """Called inside the analytics transaction: push fresh figures once it commits."""
    transaction.on_commit(_push_soon)


def _push_soon() -> None:
    """Schedule one push on a timer thread — never in the worker's own thread, where computing
    the snapshot would delay acknowledging the batch. Calls within a throttle window fold into
    the push already scheduled, which then shows all of them."""
    global _pending
    with _lock:
        if _pending is not None:
            return
        every = max(PUSH_EVERY_SECONDS, _last_cost / MAX_SHARE)
        delay = max(0.0, _last_push + every - time.monotonic())
        _pending = threading.Timer(delay, _push_now)
        _pending.daemon = True
        _pending.start()


def _push_now() -> None:
    global _last_push, _last_cost, _pending
    with _lock:
        _pending = None
        _last_push = time.monotonic()
    try:
        # Nobody watching: skip the snapshot (queries and charts, ~once a second under load);
        # a dashboard that opens later is sent a fresh one when it connects.
        if push.has_listeners(GROUP):
            push.signal(GROUP, frame())
    finally:
        _last_cost = time.monotonic() - _last_push
        close_old_connections()
