"""Redis losing its data under load, with real processes: daphne, the relay and the analytics
and mentions workers on a private Redis that keeps nothing on disk.

300 messages are posted at 20 msg/s (one in ten mentions bob) while Redis is killed and started
empty, flushed, or killed together with the relay. Every subscriber processes every event
exactly once, and every socket gets every message once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time

import pytest
import pytest_asyncio
import redis
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from analytics.models import BehaviourRecord
from broker.models import ProcessedEvent, RedisState
from chat import actions
from chat.events import TOPIC_MESSAGE
from chat.models import Mention
from tests.support.procs import RemoteSocket, async_wait_until

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]

MESSAGES = 300
RATE = 20  # posts per second
MENTION_EVERY = 10
OUTAGE_AT = 100  # the outage starts before this post...
REDIS_BACK_AT = 140  # ...Redis is back before this one (2 s later at 20 msg/s)...
RELAY_BACK_AT = 160  # ...and the relay, when it was killed too


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_thread_connections():
    yield
    await database_sync_to_async(connections.close_all)()


QUIET_AT = 110  # with the relay killed: a post in another room, the last there


@database_sync_to_async
def counts() -> dict[str, int]:
    return {
        "analytics": BehaviourRecord.objects.filter(type="message.created").count(),
        "mentions": Mention.objects.count(),
        "analytics ledger": ProcessedEvent.objects.filter(
            subscriber="analytics", topic=TOPIC_MESSAGE
        ).count(),
        "mentions ledger": ProcessedEvent.objects.filter(subscriber="mentions").count(),
    }


def expected(messages: int) -> dict[str, int]:
    return {
        "analytics": messages,
        "mentions": MESSAGES // MENTION_EVERY,
        "analytics ledger": messages,
        "mentions ledger": messages,
    }


@database_sync_to_async
def consumers_json(redis_url: str) -> dict:
    out = io.StringIO()
    with override_settings(REDIS_URL=redis_url):
        call_command("consumers", "--json", stdout=out)
    return json.loads(out.getvalue())


def body(i: int) -> str:
    return f"message {i}" + (" @bob" if i % MENTION_EVERY == 0 else "")


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

        start = time.monotonic()
        for i in range(1, MESSAGES + 1):
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
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))  # the pace
            message = await poster.post(body(i), timeout=15)
            assert message["seq"] == i

        await asyncio.gather(*reading)
        await poster.wait_seq(MESSAGES)
        for sock in [poster, *listeners]:
            await sock.round_trip()  # anything sent after the last message has arrived
            assert sock.seqs == list(range(1, MESSAGES + 1))
            assert [m["body"] for m in sock.received] == [body(i) for i in range(1, MESSAGES + 1)]
            await sock.close()

        want = expected(MESSAGES + (1 if quiet else 0))

        async def all_processed() -> bool:
            return await counts() == want

        with contextlib.suppress(TimeoutError):  # the assertion below shows what is missing
            await async_wait_until(all_processed, timeout=60, what="every event processed")
        assert await counts() == want
        state = await database_sync_to_async(RedisState.objects.get)()
        assert state.losses >= 1, "the loss was not noticed"
        assert (await consumers_json(url))["mentions"]["redis_losses"] == state.losses

        async def caught_up() -> bool:
            # Copies of processed events (a republish racing new posts) are read and dropped.
            stats = await consumers_json(url)
            return stats["analytics"]["lag"] == 0 and stats["mentions"]["lag"] == 0

        await async_wait_until(caught_up, what="no lag left")
        assert await counts() == want  # the copies changed nothing
