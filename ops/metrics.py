"""Prometheus metrics of every Parley process, with the official ``prometheus-client``.

Multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set *before this module is first
imported* (``manage.py serve`` sets it for all its children), each process writes its values to
files there and ``GET /metrics`` on any server process reports the sum over all of them: N
server processes, the relay, the workers and ``serve`` itself. Without it, each process reports
its own values only.

Hot-path cost: the fan-out writes thousands of frames per second, so nothing here is touched per
socket. Frames are counted in a plain integer (``frames.sent += 1``, tens of nanoseconds) and
added to the Prometheus counter once per fan-out or post batch (``flush_frames``); deliveries are
counted once per fan-out (``inc(n)``).

Values that live in the database or Redis (outbox backlog, subscribers' lag) are not kept by any
process: ``StateCollector`` reads them when ``/metrics`` is scraped.
"""

from __future__ import annotations

import os
import time
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# Latency buckets in seconds: a post or a push is a few ms when healthy, seconds when not.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

OPEN_SOCKETS = Gauge(
    "parley_open_sockets",
    "WebSocket connections open now, by kind (room, me, dashboard).",
    ["kind"],
    multiprocess_mode="livesum",
)
FRAMES_SENT = Counter("parley_frames_sent", "WebSocket frames written to clients.")
FRAMES_DIRECT = Counter(
    "parley_frames_direct",
    "Of those, frames written through the server's adapter (realtime/sockets/: the fast path) "
    "rather than the server's own send.",
)
DELIVERIES = Counter(
    "parley_deliveries", "Live events handed to local sockets by the channel layer's fan-out."
)
POSTS = Counter(
    "parley_posts", "Posts answered, by outcome (accepted, or the refusal's code).", ["outcome"]
)
POST_LATENCY = Histogram(
    "parley_post_latency_seconds",
    "A WebSocket post from its arrival at the server process to its answer (ack or refusal).",
    buckets=_BUCKETS,
)
PUSH_LATENCY = Histogram(
    "parley_push_latency_seconds",
    "An event from its commit to its frame written to the last local socket of a fan-out.",
    buckets=_BUCKETS,
)
RELAY_PUBLISHED = Counter("parley_relay_published", "Outbox events put on Redis.", ["path"])
RELAY_ERRORS = Counter(
    "parley_relay_errors", "Failed attempts to publish outbox events.", ["path", "error"]
)
REDIS_LOSSES = Counter(
    "parley_redis_losses",
    "Times a process noticed that Redis lost its data (broker/loss.py), by process kind.",
    ["process"],
)
REDIS_REPUBLISHED = Counter(
    "parley_redis_republished",
    "Outbox events put on Redis again after a loss because a subscriber had not processed them.",
)
RESTARTS = Counter(
    "parley_process_restarts", "Children restarted by manage.py serve, by child.", ["process"]
)


class _Frames:
    """Frames written since the last flush (a plain int: see the module docstring)."""

    sent = 0
    direct = 0  # of which written through a server adapter (realtime.sockets)


frames = _Frames()


def flush_frames() -> None:
    """Add the frames counted since the last call to ``parley_frames_sent`` (and
    ``parley_frames_direct``)."""
    n = frames.sent
    if n:
        frames.sent = 0
        FRAMES_SENT.inc(n)
    n = frames.direct
    if n:
        frames.direct = 0
        FRAMES_DIRECT.inc(n)


def fanned_out(sockets: int, message: dict) -> None:
    """Once per fan-out of ``message`` to ``sockets`` local sockets."""
    if sockets:
        DELIVERIES.inc(sockets)
        committed = message.get("ts")
        if committed is not None:
            PUSH_LATENCY.observe(max(0.0, time.time() - committed))
    flush_frames()


def count_posts(results: Iterable[object]) -> None:
    """Count answered posts: an exception with a ``code`` is a refusal, anything else accepted."""
    tally = Tally(
        getattr(r, "code", "accepted") if isinstance(r, Exception) else "accepted" for r in results
    )
    for outcome, n in tally.items():
        POSTS.labels(outcome).inc(n)
