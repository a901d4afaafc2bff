"""Graceful restart of a server process: what SIGTERM does, whichever the ASGI server.

``restart(stop_accepting)`` (started by the server's adapter on SIGTERM: realtime/daphne_server.py,
realtime/uvicorn_server.py) guarantees, in this order:

1. ``/readyz`` answers 503 (``ops.health.start_draining``) while everything else goes on
   serving, for ``PARLEY_DRAIN["DELAY_SECONDS"]``: a readiness probe takes the process out of
   rotation before it refuses anything.
2. ``stop_accepting()``: the listening sockets are closed; a new connection is refused by the
   kernel, so a proxy retries it on another process (nginx: ``proxy_next_upstream error``).
3. Every open WebSocket is told to ``drain()`` (a room socket first answers every post it has
   received, so no acked post is lost and no received post goes unanswered) and is closed with
   1012 (service restart); a socket accepted meanwhile gets the same. HTTP requests in
   progress finish. This waits until every WebSocket and request of the process has ended, or
   ``PARLEY_DRAIN["CLOSE_TIMEOUT_SECONDS"]``; then the caller lets the server exit (what is
   left is dropped by the server's own shutdown, and logged here).

Clients (static/parley/client.js, docs/example_client.py) reconnect on 1012 with back-off,
resume from their last seq and re-send their unacknowledged posts (client_ids make that safe).

Sockets are tracked by realtime/application.py (``track``) from the start of their scope; one is
drained once it has been accepted (``accepted``, from realtime/sending.py), since a close before
the accept would refuse the handshake instead of closing with 1012.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from django.conf import settings

from ops import health

log = logging.getLogger("parley.drain")

CLOSE_RESTART = 1012  # RFC 6455 (IANA registry): service restart, the client may reconnect


class Drainable(Protocol):
    accepted: bool

    async def drain(self) -> None:
        """Finish what was received, then close the socket with ``CLOSE_RESTART``."""


class _Tracker:
    """This process' WebSockets and HTTP requests in progress (one per server process)."""

    def __init__(self) -> None:
        self.sockets: set[Drainable] = set()
        self.requests = 0
        self.changed: asyncio.Event | None = None  # set while a drain waits for a change
        self.draining: set[Drainable] = set()
        self.tasks: set[asyncio.Task] = set()

    def poke(self) -> None:
        if self.changed is not None:
            self.changed.set()


_tracker = _Tracker()


@contextlib.contextmanager
def track(socket: Drainable | None = None) -> Iterator[None]:
    """Around a WebSocket consumer's whole life (``socket``) or an HTTP request (None)."""
    if socket is None:
        _tracker.requests += 1
    else:
        _tracker.sockets.add(socket)
    try:
        yield
    finally:
        if socket is None:
            _tracker.requests -= 1
        else:
            _tracker.sockets.discard(socket)
            _tracker.draining.discard(socket)
        _tracker.poke()


def accepted(socket: Drainable) -> None:
    """``socket`` completed its handshake: a drain under way closes it now."""
    _tracker.poke()


async def close_all(seconds: float) -> tuple[int, int]:
    """Drain every tracked socket (those accepted later too) and wait until every socket and
    request has ended, at most ``seconds``. Returns (sockets, requests) still open."""
    tracker = _tracker
    tracker.changed = asyncio.Event()
    deadline = time.monotonic() + seconds
    while tracker.sockets or tracker.requests:
        for socket in [
            s
            for s in tracker.sockets
            if getattr(s, "accepted", False) and s not in tracker.draining
        ]:
            tracker.draining.add(socket)
            task = asyncio.ensure_future(_drain_one(socket))
            tracker.tasks.add(task)
            task.add_done_callback(tracker.tasks.discard)
        tracker.changed.clear()
        left = deadline - time.monotonic()
        if left <= 0:
            break
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                await tracker.changed.wait()
    return len(tracker.sockets), tracker.requests


async def _drain_one(socket: Drainable) -> None:
    try:
        await socket.drain()
    except Exception:  # one socket's failure must not stop the others' drain
        log.exception("draining a socket failed")


async def restart(stop_accepting: Callable[[], object]) -> None:
    """The graceful part of SIGTERM (see the module docstring); the caller then exits, also
    when this fails (logged)."""
    try:
        await _restart(stop_accepting)
    except Exception:
        log.exception("draining failed: exiting without it")


async def _restart(stop_accepting: Callable[[], object]) -> None:
    conf = settings.PARLEY_DRAIN
    health.start_draining()
    log.info(
        "SIGTERM: draining; /readyz answers 503; accepting for %.1fs more", conf["DELAY_SECONDS"]
    )
    await asyncio.sleep(conf["DELAY_SECONDS"])
    stop_accepting()
    log.info(
        "stopped accepting; closing %d sockets with %d after their posts are answered",
        len(_tracker.sockets),
        CLOSE_RESTART,
    )
    sockets, requests = await close_all(conf["CLOSE_TIMEOUT_SECONDS"])
    if sockets or requests:
        log.warning(
            "drain timed out: %d sockets and %d requests still open are dropped", sockets, requests
        )
    else:
        log.info("drained: every socket closed, every request answered; exiting")
