"""When each API token was last used: noted by every lookup, written in batches.

Each fresh token's first use used to write its own ``last_used_at`` UPDATE: in a connect storm,
a write transaction per connect (serialized on SQLite), a quarter of a connect's CPU. A lookup
now only notes (token id, time) in this process' pending map (``note``); one UPDATE writes every
pending token (a statement per 500), at most every ``PARLEY["TOKEN_LAST_USED_FLUSH_SECONDS"]``
from a daemon timer thread (which closes its database connection after the flush: Django's are
per thread), at process exit (atexit), and whenever ``flush_last_used()`` is called.

A token's row is still written at most once per ``PARLEY["TOKEN_LAST_USED_EVERY_SECONDS"]``: not
when the row as read was stamped within it, not when this process noted the token within it
(sockets of one token connecting at once read the same old value), and not when another process
wrote it within it (the UPDATE's condition). A flush stamps its tokens with the newest use it
holds (its uses lie within one flush interval), so ``last_used_at`` is exact to within that.

The UPDATE names rows by primary key and sets nothing but ``last_used_at`` (no ``save()``, no
signals): a token revoked or deleted before the flush stays revoked or deleted. A flush that
fails (database down) logs, tries once more on a fresh connection, then drops what it held (the
stamp is late by up to one interval); it never raises, and lookups never wait for it.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import Q

from accounts.models import ApiToken

logger = logging.getLogger(__name__)

_CHUNK = 500  # ids per UPDATE (SQLite's default limit is 999 parameters)
_lock = threading.Lock()
_pending: dict[int, datetime] = {}  # token id -> when it was used (this process, unwritten)
_noted: dict[str, float] = {}  # token digest -> when noted (time.monotonic()), this process
_timer: threading.Timer | None = None
_pid: int | None = None  # the process _timer was started in (a forked child has no timer)
_at_exit = False


def note(token: ApiToken, now: datetime) -> None:
    """Note that ``token`` (as just read from its row) was used at ``now``: its row is written
    by the next flush, unless it was stamped or noted within the setting's interval."""
    every = settings.PARLEY["TOKEN_LAST_USED_EVERY_SECONDS"]
    if token.last_used_at is not None and token.last_used_at > now - timedelta(seconds=every):
        return
    clock = time.monotonic()
    with _lock:
        noted = _noted.get(token.digest)
        if noted is not None and clock - noted < every:
            return
        if len(_noted) > 10_000:  # forget what is past its interval anyway
            for digest in [d for d, at in _noted.items() if clock - at >= every]:
                del _noted[digest]
        _noted[token.digest] = clock
        _pending[token.pk] = now
        _schedule()


def _schedule() -> None:
    """Start the flush timer if none is waiting (called with ``_lock`` held)."""
    global _timer, _pid, _at_exit
    if _pid != os.getpid():  # the first note of this process (a fork copies no thread)
        _pid, _timer = os.getpid(), None
    if not _at_exit:
        atexit.register(flush_last_used)
        _at_exit = True
    if _timer is None:
        _timer = threading.Timer(settings.PARLEY["TOKEN_LAST_USED_FLUSH_SECONDS"], _flush_on_timer)
        _timer.name = "parley-token-last-used"
        _timer.daemon = True
        _timer.start()


def _flush_on_timer() -> None:
    try:
        flush_last_used()
    finally:
        connections.close_all()  # this thread's own: nothing else would close them


def flush_last_used() -> int:
    """Write the pending tokens' ``last_used_at`` now: one UPDATE per 500 tokens. Returns how
    many rows it wrote (0 when nothing was pending or the write failed). Never raises."""
    global _timer
    with _lock:
        pending = dict(_pending)
        _pending.clear()
        if _timer is not None and _timer is not threading.current_thread():
            _timer.cancel()
        _timer = None
    if not pending:
        return 0
    for attempt in (1, 2):
        try:
            return _write(pending)
        except Exception:
            if attempt == 2:
                logger.exception("last_used_at of %d tokens not written (dropped)", len(pending))
                return 0
            logger.warning("writing last_used_at failed; trying once more", exc_info=True)
            connection = connections[router.db_for_write(ApiToken)]
            if not connection.in_atomic_block:
                connection.close()  # a broken connection: the next attempt opens a new one
    return 0


def discard_pending_last_used() -> None:
    """Forget the pending tokens unwritten and stop the timer (the test suite, after each test:
    its rows were rolled back, and SQLite hands their ids out again)."""
    global _timer
    with _lock:
        _pending.clear()
        if _timer is not None:
            _timer.cancel()
        _timer = None


def _write(pending: dict[int, datetime]) -> int:
    every = timedelta(seconds=settings.PARLEY["TOKEN_LAST_USED_EVERY_SECONDS"])
    stamp = max(pending.values())
    # Not within the interval before the earliest use it holds: no row is written twice within
    # the interval, whichever process wrote it first.
    stale = min(pending.values()) - every
    ids = sorted(pending)  # every writer locks rows in id order (PostgreSQL)
    written = 0
    # Inside a caller's transaction (a test's), a savepoint: a failure leaves that one usable.
    with transaction.atomic(using=router.db_for_write(ApiToken)):
        for start in range(0, len(ids), _CHUNK):
            written += (
                ApiToken.objects.filter(pk__in=ids[start : start + _CHUNK])
                .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale))
                .update(last_used_at=stamp)
            )
    return written
