"""Database work from async code (the WebSocket consumers): a small pool of threads.

channels' ``database_sync_to_async`` runs every call on one thread per process (asgiref's
thread-sensitive mode), so one socket's slow query delays every other socket's post, and 1,000
sockets connecting at once queued the posts behind their connection events for seconds
(measured by the benchmark). The consumers' calls are independent — each opens its own
transaction and shares no ORM object between threads that it writes — so they run on a pool
instead; each thread keeps its own persistent connection (CONN_MAX_AGE).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync
from django.conf import settings

_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=settings.PARLEY["DB_THREADS"], thread_name_prefix="parley-db"
        )
    return _executor


def db(func: Callable[..., Any]) -> DatabaseSyncToAsync:
    """``database_sync_to_async(func)``, run on the pool (connections closed as channels does
    when they are too old or broken)."""
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=_pool())
