"""Driving a subscriber's real broker Worker in-process, one ``step()`` at a time.

A test creates the worker, lets it run until a condition holds (a bounded loop of ``step()``
calls, each blocking on XREADGROUP at most PARLEY_BROKER["BLOCK_MS"]), then asserts. The worker's
Redis client and heartbeat are cleaned up when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from broker import groups, registry
from broker.stats import subscriber_stats
from broker.worker import Worker
from infra.redis_client import get_redis


@contextlib.contextmanager
def worker(name: str, *, consumer: str | None = None) -> Iterator[Worker]:
    """A Worker of subscriber ``name`` whose groups exist; closed at the end of the block."""
    sub = registry.get(name)
    groups.ensure_groups(get_redis(), [sub])
    w = Worker(sub, stop=threading.Event(), consumer=consumer)
    try:
        yield w
    finally:
        w.stop.set()
        w._deregister()
        w.redis.close()


def run_until(
    w: Worker, condition: Callable[[], object], *, timeout: float = 15, what: str = ""
) -> None:
    """``step()`` the worker until ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        w.step()
        if condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what or condition}")


def lag(name: str) -> int:
    """Events subscriber ``name`` has not processed yet (never delivered + unacknowledged)."""
    return subscriber_stats(get_redis(), registry.get(name))["lag"]


def drain(name: str, *, timeout: float = 15) -> None:
    """Run a worker of ``name`` until every retained event on its topics is processed."""
    with worker(name) as w:
        run_until(w, lambda: lag(name) == 0, timeout=timeout, what=f"{name} caught up")
