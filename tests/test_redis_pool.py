"""The bounded asyncio pool of ephemeral state (infra/redis_client.py): a connect storm's burst
on a busy event loop waits its turn instead of failing, and a wait still ends (real Redis)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from django.conf import settings
from redis import asyncio as aioredis

from infra import redis_client

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

SCRIPT = "redis.call('INCR', KEYS[1]) return 1"


def _client(size: int, timeout: float) -> aioredis.Redis:
    pool = redis_client.async_pool(settings.REDIS_URL, max_connections=size, timeout=timeout)
    return aioredis.Redis(connection_pool=pool)


async def test_a_burst_on_a_busy_loop_waits_its_turn():
    # 1,000 sockets connecting over 2 s, three scripts each (socket cap, presence, online list)
    # and 2 ms of the loop's own CPU before each (a connect's other work): redis-py's
    # BlockingConnectionPool of 20 lost 80-650 of the calls to "No connection available" after
    # its 5 s wait (its waiters convoy on one asyncio lock), though the burst took 6-9 s in all.
    client = _client(size=20, timeout=5)
    failures = 0

    async def connect(i: int) -> None:
        nonlocal failures
        await asyncio.sleep(i * 0.002)
        for _ in range(3):
            end = time.perf_counter() + 0.002
            while time.perf_counter() < end:
                pass
            try:
                await client.eval(SCRIPT, 1, "parley:test:pool")
            except redis.ConnectionError:
                failures += 1

    await asyncio.gather(*(connect(i) for i in range(1000)))
    pool = client.connection_pool
    try:
        assert failures == 0
        assert int(await client.get("parley:test:pool")) == 3000
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 20
    finally:
        await client.delete("parley:test:pool")
        await client.aclose()


async def test_a_wait_ends_with_a_connection_error():
    client = _client(size=1, timeout=0.2)
    pool = client.connection_pool
    held = await pool.get_connection()
    try:
        with pytest.raises(redis.ConnectionError, match="No connection available"):
            await client.ping()
    finally:
        await pool.release(held)
    assert await client.ping() is True  # the released connection serves the next caller
    await client.aclose()
