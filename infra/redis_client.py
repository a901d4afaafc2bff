"""Every Redis client Parley makes, from ``REDIS_URL``: the only module that creates one.

``REDIS_URL`` is one server or a Sentinel-managed primary (infra/redis_url.py); with
``REDIS_URL`` unset, settings start or reuse the embedded Redis (infra/embedded_redis.py) and
export its URL, so every client below reaches it too. Clients carry connections only: every key
name (``PARLEY_REDIS_PREFIX``, streams, hash tags) is built by contract/redis_keys.py, every
channel-layer channel name by chat/layers.py (``PARLEY_LAYER_PREFIX``).

- ``get_redis()``: the write path, commands and probes (sync, one per process, thread-safe);
  fails fast (1 s to connect, 2 s to read, one immediate retry).
- ``blocking_client()``: a subscriber worker's own (sync); its read timeout outlasts a
  blocking XREADGROUP.
- ``ephemeral_client()``: presence, typing and socket counts (asyncio, one per event loop); a
  bounded pool that makes a burst wait for a connection.
- ``subscriber_client(url)``: the channel layer's one pub/sub connection per event loop
  (asyncio, chat/hub.py); no read timeout, since an idle subscription reads nothing for hours.
- ``channel_layer_host(url)``: not a client but channels-redis' host entry, with the same
  options, from which channels-redis makes its own connections (group_send, channels).

With a Sentinel URL every client asks the sentinels for the primary when it (re)connects, so
it follows a failover (``follow_primary`` also drops idle connections to a former primary).
"""

from __future__ import annotations

import asyncio
import functools

import redis
import redis.sentinel
from django.conf import settings
from django.core.signals import setting_changed
from redis import asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from infra.loops import per_loop
from infra.redis_url import SentinelURL, layer_host, parse_sentinel

# Asking the sentinels for the primary: a sentinel that does not answer within this is skipped.
SENTINEL_TIMEOUT = 1.0
EPHEMERAL_POOL_SIZE = 20  # asyncio connections per process for presence and socket counts


def connect(url: str, **options) -> redis.Redis:
    """A client of ``url``. With a Sentinel URL its connections ask the sentinels for the
    primary when they (re)connect, and one that finds itself talking to a demoted primary
    (READONLY) disconnects: with a retry in ``options`` the command runs on the new primary."""
    spec = parse_sentinel(url)
    if spec is None:
        return redis.Redis.from_url(url, **options)
    return _sentinel(spec).master_for(spec.service, db=spec.db, password=spec.password, **options)


def connect_async(url: str, **options) -> aioredis.Redis:
    """An asyncio client of ``url`` (a Sentinel URL: its connections find the primary)."""
    spec = parse_sentinel(url)
    if spec is None:
        return aioredis.Redis.from_url(url, **options)
    return _async_sentinel(spec).master_for(
        spec.service, db=spec.db, password=spec.password, **options
    )


def async_pool(
    url: str, *, max_connections: int, timeout: float, **options
) -> aioredis.ConnectionPool:
    """A bounded asyncio pool that makes a burst wait up to ``timeout`` for a connection."""
    spec = parse_sentinel(url)
    if spec is None:
        return _WaitingPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **options
        )
    return _WaitingSentinelPool(
        spec.service,
        _async_sentinel(spec),
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


class _Waiting:
    """Mixin of an asyncio connection pool: past ``max_connections`` a caller waits its turn
    (first come, first served) up to ``timeout`` seconds, then gets redis' ConnectionError.

    Waiters queue on a semaphore: a released connection goes straight to the next one. redis-py's
    BlockingConnectionPool makes every waiter, and every release, take one asyncio lock again
    after each wake-up; in a 1,000-socket connect storm that convoy on a busy event loop kept 20
    connections idle while callers timed out (hundreds of "No connection available" per storm,
    each a socket whose cap and presence failed open). Built on the pools' public
    ``get_connection`` and ``release``."""

    def __init__(self, *args, timeout: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.timeout = timeout
        self._turns = asyncio.Semaphore(self.max_connections)

    async def get_connection(self, *args, **kwargs):
        try:
            async with asyncio.timeout(self.timeout):
                await self._turns.acquire()
        except TimeoutError as exc:
            raise redis.ConnectionError("No connection available.") from exc
        try:
            return await super().get_connection()
        except BaseException:
            self._turns.release()
            raise

    async def release(self, connection) -> None:
        try:
            await super().release(connection)
        finally:
            self._turns.release()


class _WaitingPool(_Waiting, aioredis.ConnectionPool):
    """The bounded pool of one Redis server."""


class _WaitingSentinelPool(_Waiting, aioredis.sentinel.SentinelConnectionPool):
    """The bounded pool of a Sentinel-managed primary: the Sentinel pool's primary lookup, and
    the wait for a free connection. tests/test_sentinel.py runs it against real sentinels."""


def _sentinel(spec: SentinelURL) -> Sentinel:
    return Sentinel(
        spec.sentinels, socket_timeout=SENTINEL_TIMEOUT, socket_connect_timeout=SENTINEL_TIMEOUT
    )


def _async_sentinel(spec: SentinelURL) -> aioredis.sentinel.Sentinel:
    return aioredis.sentinel.Sentinel(
        spec.sentinels, socket_timeout=SENTINEL_TIMEOUT, socket_connect_timeout=SENTINEL_TIMEOUT
    )


# --- the shared write-path client --------------------------------------------------------------
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
    """The process' shared client (thread-safe pool): one per ``REDIS_URL``."""
    return _client(settings.REDIS_URL)


def _reset(*, setting: str, **kwargs) -> None:
    if setting == "REDIS_URL":
        _client.cache_clear()


setting_changed.connect(_reset)


# --- the other clients -------------------------------------------------------------------------
def blocking_client() -> redis.Redis:
    """A client of its own for blocking reads: its socket timeout outlasts the longest
    XREADGROUP BLOCK (``PARLEY_BROKER["BLOCK_MS"]``)."""
    block_s = settings.PARLEY_BROKER["BLOCK_MS"] / 1000
    return connect(
        settings.REDIS_URL,
        socket_timeout=block_s + 5,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 1),
    )


def _ephemeral() -> aioredis.Redis:
    # A bounded pool that makes a burst wait for a connection (_Waiting): an unbounded pool
    # opened a connection per connecting socket, and redis-py's default fails with "Too many
    # connections" past its maximum, which 1,000 sockets connecting at once reach (measured by
    # the benchmark).
    pool = async_pool(
        settings.REDIS_URL,
        max_connections=EPHEMERAL_POOL_SIZE,
        timeout=5,
        socket_timeout=2,
        socket_connect_timeout=1,
    )
    return aioredis.Redis(connection_pool=pool)


# This event loop's client for ephemeral state (presence, typing, socket counts).
ephemeral_client = per_loop(_ephemeral)


def _connection_options(url: str) -> dict:
    """Options of a connection that stays subscribed: no read timeout (redis-py 8's default
    5 s would cut an idle subscription; tests/chat/test_idle.py guards this), a bounded
    connect, and TCP keepalive (a unix socket takes no keepalive option)."""
    return {
        "socket_timeout": None,
        "socket_connect_timeout": 2,
        **({"socket_keepalive": True} if url.startswith("redis") else {}),
    }


def subscriber_client(url: str) -> aioredis.Redis:
    """A client for the channel layer's pub/sub connection on the running event loop."""
    return connect_async(url, **_connection_options(url))


def channel_layer_host(url: str) -> dict:
    """channels-redis' host entry for ``url``: what it builds its own connections from."""
    return layer_host(url, **_connection_options(url))
