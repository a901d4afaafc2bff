"""Per-user rates, shared by every socket and process of the user (Redis counters).

Each limit counts in fixed windows of ``window`` seconds that start at the user's first counted
action (the counter's key is created with that expiry, atomically with the count): when it
expires, the next action starts a fresh window, so ``retry_after`` is the time left in the
user's current window (what REST's ``Retry-After``/``RateLimit-Reset`` and the socket's
``rate_limited`` error frame's ``retry_after`` say). Windows anchored on the user rather than
on the clock mean a burst is never split by a clock boundary it cannot see.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import redis
from django.conf import settings

from contract import redis_keys
from infra.redis_client import get_redis

log = logging.getLogger("parley.ratelimit")


@dataclass(frozen=True)
class Quota:
    """Where a user stands on one limit: ``limit`` per window, ``remaining`` in this window
    (0 once refused), and ``reset`` seconds until the window (and the count) starts over."""

    limit: int
    remaining: int
    reset: int


# One key, one script: counts an action in the key's window, opening the window (the key with
# its expiry) first if there is none; answers the count and the window's milliseconds left.
_COUNT = """
redis.call('SET', KEYS[1], 0, 'PX', ARGV[1], 'NX')
local count = redis.call('INCR', KEYS[1])
return {count, redis.call('PTTL', KEYS[1])}
"""


def _seconds_left(milliseconds: int, window: int) -> int:
    """Whole seconds until a window with ``milliseconds`` left ends (1 to ``window``)."""
    return min(window, max(1, math.ceil(milliseconds / 1000)))


def _key(scope: str, user_id: int | str, window: int) -> str:
    return redis_keys.key("rate", scope, user_id, window)


def allow(scope: str, user_id: int | str, *, limit: int, window: int) -> bool:
    """Count one action of ``scope`` for ``user_id`` (or another key, such as a client
    address) in the current window; False when over.

    Fails open: while Redis is unreachable, writing must keep working (the outbox holds the
    events), so limits are not enforced then.
    """
    return allow_many(scope, [user_id], limit=limit, window=window)[0]


def allow_many(
    scope: str, user_ids: list[int] | list[str], *, limit: int, window: int
) -> list[bool]:
    """``allow`` for one action of each of ``user_ids`` (repeats count again), in order, with
    one Redis round trip."""
    return [wait is None for wait in waits(scope, user_ids, limit=limit, window=window)]


def waits(
    scope: str, user_ids: list[int] | list[str], *, limit: int, window: int
) -> list[int | None]:
    """Count one action of each of ``user_ids`` (repeats count again), in order, in one round
    trip: None for each allowed, the seconds left in the user's window for each refused."""
    counts = _count(scope, user_ids, window)
    if counts is None:
        return [None] * len(user_ids)
    return [None if c <= limit else _seconds_left(left, window) for c, left in counts]


def take(scope: str, user_id: int, *, limit: int, window: int) -> tuple[bool, Quota | None]:
    """``allow`` that also says where the user then stands (None while Redis is unreachable:
    allowed, nothing enforced)."""
    counts = _count(scope, [user_id], window)
    if counts is None:
        return True, None
    [(count, left)] = counts
    return count <= limit, Quota(limit, max(0, limit - count), _seconds_left(left, window))


def _count(
    scope: str, user_ids: list[int] | list[str], window: int
) -> list[tuple[int, int]] | None:
    """Count one action of each of ``user_ids`` in its current window: (count after it,
    milliseconds left in the window) each, in order, in one round trip; None (logged) if Redis
    is unreachable."""
    if not user_ids:
        return []
    try:
        pipe = get_redis().pipeline(transaction=False)
        for user_id in user_ids:
            pipe.eval(_COUNT, 1, _key(scope, user_id, window), window * 1000)
        return [(int(n), int(left)) for n, left in pipe.execute()]
    except redis.RedisError as exc:
        log.warning("rate limit not enforced, Redis unreachable: %s", exc)
        return None


def quota(scope: str, user_id: int, *, limit: int, window: int) -> Quota | None:
    """Where ``user_id`` stands on ``scope`` now, counting nothing; None while Redis is
    unreachable (limits are not enforced then)."""
    try:
        pipe = get_redis().pipeline(transaction=False)
        key = _key(scope, user_id, window)
        count, left = pipe.get(key).pttl(key).execute()
    except redis.RedisError:
        return None
    count = int(count or 0)
    reset = _seconds_left(left, window) if count else window  # no window open: a full one
    return Quota(limit=limit, remaining=max(0, limit - count), reset=reset)


def post_waits(user_ids: list[int]) -> list[int | None]:
    """Messages: PARLEY RATE_LIMIT_MESSAGES per RATE_LIMIT_WINDOW_SECONDS. Counts a post of
    each of ``user_ids`` (a batch), in order: None for each allowed, the seconds to wait
    (``retry_after``) for each refused."""
    return waits(
        "post",
        user_ids,
        limit=settings.PARLEY["RATE_LIMIT_MESSAGES"],
        window=settings.PARLEY["RATE_LIMIT_WINDOW_SECONDS"],
    )


def post_quota(user_id: int) -> Quota | None:
    """``quota`` of the message limit."""
    return quota(
        "post",
        user_id,
        limit=settings.PARLEY["RATE_LIMIT_MESSAGES"],
        window=settings.PARLEY["RATE_LIMIT_WINDOW_SECONDS"],
    )
