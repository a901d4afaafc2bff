"""Redis losing its data under load, with real processes: daphne, the relay and the analytics
and mentions workers on a private Redis that keeps nothing on disk.

300 messages are posted at 20 msg/s while Redis is killed and started empty, flushed, or killed
together with the relay. Every subscriber processes every event exactly once, and every socket
gets every message once, in order.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
import redis
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections

from broker.models import RedisState
from chat import actions
from tests.support.load import (
    MENTION_EVERY,
    assert_every_socket_got_all,
    assert_processed_once,
    consumers_json,
    expected,
    post_at_rate,
)
from tests.support.procs import RemoteSocket

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]

MESSAGES = 300
OUTAGE_AT = 100  # the outage starts before this post...
REDIS_BACK_AT = 140  # ...Redis is back before this one (2 s later at 20 msg/s)...
RELAY_BACK_AT = 160  # ...and the relay, when it was killed too
QUIET_AT = 110  # with the relay killed: a post in another room, the last there


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_thread_connections():
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.mark.parametrize("outage", ["kill", "flushall", "kill-with-relay"])
async def test_subscribers_and_sockets_get_everything_once_when_redis_loses_its_data(
    processes, private_redis, cookies, outage
):
    url = private_redis.url
    daphne = processes.daphne(redis_url=url, PARLEY_RATE_LIMIT_MESSAGES="100000")
    relay = processes.relay(redis_url=url)
    # Workers linger as in production (500 ms): events wait on the stream between batches.
    processes.worker("analytics", "mentions", redis_url=url, PARLEY_BROKER_LINGER_MS="500")
    with processes.explain():
        poster, _ = await RemoteSocket.open(daphne.ws_url("lobby"), cookies["alice"])
        listeners = [
            (await RemoteSocket.open(daphne.ws_url("lobby"), cookies["bob"]))[0] for _ in range(2)
        ]
        reading = [asyncio.create_task(s.wait_seq(MESSAGES, timeout=90)) for s in listeners]
        quiet = None
        if outage == "kill-with-relay":
            await database_sync_to_async(actions.create_room)(
                creator=await database_sync_to_async(get_user_model().objects.get)(
                    username="alice"
                ),
                slug="quiet",
                title="Quiet",
            )
            quiet, _ = await RemoteSocket.open(daphne.ws_url("quiet"), cookies["alice"])

        async def before(i: int) -> None:
            if i == OUTAGE_AT:
                if outage == "flushall":
                    redis.Redis.from_url(url).flushall()
                else:
                    if outage == "kill-with-relay":
                        relay.stop(sig_kill=True)
                    private_redis.kill()
            elif i == REDIS_BACK_AT and outage != "flushall":
                private_redis.start()  # empty
            elif i == RELAY_BACK_AT and outage == "kill-with-relay":
                processes.relay(redis_url=url)
            elif i == QUIET_AT and quiet is not None:
                # Nobody posts there again: only the restarted relay's sweep can publish it.
                await quiet.post("the only message in a quiet room", timeout=15)

        await post_at_rate(poster, MESSAGES, before)
        await asyncio.gather(*reading)
        await assert_every_socket_got_all([poster, *listeners], MESSAGES)

        messages = MESSAGES + (1 if quiet else 0)
        await assert_processed_once(expected(messages, MESSAGES // MENTION_EVERY), url)
        assert "Redis lost its data (its marker key vanished)" in relay.output()
        state = await database_sync_to_async(RedisState.objects.get)()
        assert (await consumers_json(url))["mentions"]["redis_losses"] == state.losses
