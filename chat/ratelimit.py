"""Per-user rates, shared by every socket and process of the user (Redis counters)."""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings

from config.redis_client import get_redis

log = logging.getLogger("parley.ratelimit")


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
    if not user_ids:
        return []
    bucket = int(time.time() // window)
    try:
        pipe = get_redis().pipeline(transaction=False)
        for user_id in user_ids:
            key = f"parley:rate:{scope}:{user_id}:{bucket}"
            pipe.incr(key)
            pipe.expire(key, window * 2)
        counts = pipe.execute()[::2]
    except redis.RedisError as exc:
        log.warning("rate limit not enforced, Redis unreachable: %s", exc)
        return [True] * len(user_ids)
    return [count <= limit for count in counts]


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
