"""The synchronous Redis client used by the write path (publishing, rate limits)."""

from __future__ import annotations

import functools

import redis
from django.conf import settings
from django.core.signals import setting_changed
from redis.backoff import NoBackoff
from redis.retry import Retry


@functools.cache
def _client(url: str) -> redis.Redis:
    # Fail fast: a post must not wait out redis-py's default retry back-off while Redis is down
    # (the outbox keeps the event). One immediate retry replaces a pooled connection that a
    # Redis restart closed.
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=1,
        socket_timeout=2,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


def get_redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


def _reset(*, setting: str, **kwargs) -> None:
    if setting == "REDIS_URL":
        _client.cache_clear()


setting_changed.connect(_reset)
