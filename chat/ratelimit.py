"""Per-user rates, shared by every socket and process of the user (Redis counters).

Each limit counts in fixed windows of ``window`` seconds aligned on the clock: a window's
counter is reset when the next window starts, so ``retry_after`` is the time left in the
current window (what REST's ``Retry-After``/``RateLimit-Reset`` and the socket's
``rate_limited`` error frame's ``retry_after`` say).
"""

from __future__ import annotations

import logging
import math
import time
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


def retry_after(window: int) -> int:
    """Whole seconds until the current window of ``window`` seconds ends (at least 1)."""
    return max(1, math.ceil(window - time.time() % window))


def _key(scope: str, user_id: int | str, window: int) -> str:
    return redis_keys.key("rate", scope, user_id, int(time.time() // window))


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
    counts = _count(scope, user_ids, window)
    return [True] * len(user_ids) if counts is None else [count <= limit for count in counts]


def take(scope: str, user_id: int, *, limit: int, window: int) -> tuple[bool, Quota | None]:
    """``allow`` that also says where the user then stands (None while Redis is unreachable:
    allowed, nothing enforced)."""
    counts = _count(scope, [user_id], window)
    if counts is None:
        return True, None
    remaining = max(0, limit - counts[0])
    return counts[0] <= limit, Quota(limit, remaining, retry_after(window))


def _count(scope: str, user_ids: list[int] | list[str], window: int) -> list[int] | None:
    """Count one action of each of ``user_ids`` in the current window; the counts after it,
    or None (logged) if Redis is unreachable."""
    if not user_ids:
        return []
    try:
        pipe = get_redis().pipeline(transaction=False)
        for user_id in user_ids:
            key = _key(scope, user_id, window)
            pipe.incr(key)
            pipe.expire(key, window * 2)
        return pipe.execute()[::2]
    except redis.RedisError as exc:
        log.warning("rate limit not enforced, Redis unreachable: %s", exc)
        return None


def quota(scope: str, user_id: int, *, limit: int, window: int) -> Quota | None:
    """Where ``user_id`` stands on ``scope`` now, counting nothing; None while Redis is
    unreachable (limits are not enforced then)."""
    try:
        count = int(get_redis().get(_key(scope, user_id, window)) or 0)
    except redis.RedisError:
        return None
    return Quota(limit=limit, remaining=max(0, limit - count), reset=retry_after(window))


def allow_post(user_id: int) -> bool:
    """Messages: PARLEY RATE_LIMIT_MESSAGES per RATE_LIMIT_WINDOW_SECONDS."""
    return allow_posts([user_id])[0]


def allow_posts(user_ids: list[int]) -> list[bool]:
    """``allow_post`` for several posts at once (a batch), in order."""
    return allow_many(
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


def post_refusal_wait() -> int:
    """Seconds a post refused by the message limit should wait (``retry_after``)."""
    return retry_after(settings.PARLEY["RATE_LIMIT_WINDOW_SECONDS"])
