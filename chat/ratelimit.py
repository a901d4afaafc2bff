"""Per-user posting rate, shared by every socket and process of the user (a Redis counter)."""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings

from chat.redis_client import get_redis

log = logging.getLogger("parley.ratelimit")


def allow_post(user_id: int) -> bool:
    """Count one post for ``user_id`` in the current window; False once over the limit.

    Fails open: while Redis is unreachable, posting must keep working (the outbox holds the
    events), so the limit is not enforced then.
    """
    limit = settings.PARLEY["RATE_LIMIT_MESSAGES"]
    window = settings.PARLEY["RATE_LIMIT_WINDOW_SECONDS"]
    key = f"parley:rate:post:{user_id}:{int(time.time() // window)}"
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, window * 2)
        count, _ = pipe.execute()
    except redis.RedisError as exc:
        log.warning("rate limit not enforced, Redis unreachable: %s", exc)
        return True
    return count <= limit
