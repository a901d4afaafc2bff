"""Per-user rates, shared by every socket and process of the user (Redis counters)."""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings

from config.redis_client import get_redis

log = logging.getLogger("parley.ratelimit")


def allow(scope: str, user_id: int, *, limit: int, window: int) -> bool:
    """Count one action of ``scope`` for ``user_id`` in the current window; False when over.

    Fails open: while Redis is unreachable, writing must keep working (the outbox holds the
    events), so limits are not enforced then.
    """
    key = f"parley:rate:{scope}:{user_id}:{int(time.time() // window)}"
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, window * 2)
        count, _ = pipe.execute()
    except redis.RedisError as exc:
        log.warning("rate limit not enforced, Redis unreachable: %s", exc)
        return True
    return count <= limit


def allow_post(user_id: int) -> bool:
    """Messages: PARLEY RATE_LIMIT_MESSAGES per RATE_LIMIT_WINDOW_SECONDS."""
    return allow(
        "post",
        user_id,
        limit=settings.PARLEY["RATE_LIMIT_MESSAGES"],
        window=settings.PARLEY["RATE_LIMIT_WINDOW_SECONDS"],
    )
