"""Redis clients from ``REDIS_URL``: the write path's shared client, and factories for the
others (workers' blocking reads, presence's async pool) that follow a Sentinel failover when
the URL names a Sentinel-managed primary (config/redis_url.py)."""

from __future__ import annotations

import functools

import redis
import redis.sentinel
from django.conf import settings
from django.core.signals import setting_changed
from redis import asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from config.redis_url import SentinelURL, parse_sentinel

# Asking the sentinels for the primary: a sentinel that does not answer within this is skipped.
SENTINEL_TIMEOUT = 1.0


def connect(url: str, **options) -> redis.Redis:
    """A client of ``url``. With a Sentinel URL its connections ask the sentinels for the
    primary when they (re)connect, and one that finds itself talking to a demoted primary
    (READONLY) disconnects: with a retry in ``options`` the command runs on the new primary."""
    spec = parse_sentinel(url)
    if spec is None:
        return redis.Redis.from_url(url, **options)
    return _sentinel(spec).master_for(spec.service, db=spec.db, password=spec.password, **options)


def async_pool(url: str, *, max_connections: int, timeout: float, **options):
    """A bounded asyncio pool that makes a burst wait up to ``timeout`` for a connection."""
    spec = parse_sentinel(url)
    if spec is None:
        return aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **options
        )
    manager = aioredis.sentinel.Sentinel(
        spec.sentinels, socket_timeout=SENTINEL_TIMEOUT, socket_connect_timeout=SENTINEL_TIMEOUT
    )
    return _BlockingSentinelPool(
        spec.service,
        manager,
        db=spec.db,
        password=spec.password,
        max_connections=max_connections,
        timeout=timeout,
        **options,
    )


def follow_primary(client: redis.Redis) -> None:
    """For a Sentinel client, ask the sentinels for the primary now: idle connections to a
    former primary are dropped. Pooled connections otherwise stay on a demoted primary, which
    accepts writes until the sentinels reconfigure it (seconds later), and those are lost."""
    pool = client.connection_pool
    if isinstance(pool, redis.sentinel.SentinelConnectionPool):
        pool.get_master_address()


class _BlockingSentinelPool(
    aioredis.sentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool
):
    """redis-py has a blocking pool and a Sentinel pool, not both: this is both (the Sentinel
    pool's primary lookup, the blocking pool's wait for a free connection)."""


def _sentinel(spec: SentinelURL) -> Sentinel:
    return Sentinel(
        spec.sentinels, socket_timeout=SENTINEL_TIMEOUT, socket_connect_timeout=SENTINEL_TIMEOUT
    )


@functools.cache
def _client(url: str) -> redis.Redis:
    # Fail fast: a post must not wait out redis-py's default retry back-off while Redis is down
    # (the outbox keeps the event). One immediate retry replaces a pooled connection that a
    # Redis restart (or a failover) closed.
    return connect(
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
