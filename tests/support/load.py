"""Posting at a steady rate through real processes and counting what every consumer got: the
sockets' messages, analytics' records and mentions (tests of Redis losses and failovers)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async
from django.core.management import call_command
from django.test import override_settings

from analytics.models import BehaviourRecord
from broker.models import ProcessedEvent
from chat.models import Mention
from contract.events import TOPIC_MESSAGE
from tests.support.procs import RemoteSocket, async_wait_until

RATE = 20  # posts per second
MENTION_EVERY = 10  # one post in ten mentions bob


def body(i: int) -> str:
    return f"message {i}" + (" @bob" if i % MENTION_EVERY == 0 else "")


async def post_at_rate(
    poster: RemoteSocket, n: int, before: Callable[[int], Awaitable[None] | None]
) -> None:
    """Post ``body(1..n)`` at ``RATE``; ``before(i)`` runs before post i (an outage, say)."""
    start = time.monotonic()
    for i in range(1, n + 1):
        result = before(i)
        if result is not None:
            await result
        await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))  # the pace
        message = await poster.post(body(i), timeout=15)
        assert message["seq"] == i


async def assert_every_socket_got_all(sockets: list[RemoteSocket], n: int) -> None:
    """Each socket got messages 1..n once each, in order, and nothing more (then it closes)."""
    for sock in sockets:
        await sock.wait_seq(n, timeout=60)
        await sock.round_trip()  # anything sent after the last message has arrived
        assert sock.seqs == list(range(1, n + 1))
        assert [m["body"] for m in sock.received] == [body(i) for i in range(1, n + 1)]
        await sock.close()


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


def expected(messages: int, mentions: int) -> dict[str, int]:
    return {
        "analytics": messages,
        "mentions": mentions,
        "analytics ledger": messages,
        "mentions ledger": messages,
    }


@database_sync_to_async
def consumers_json(redis_url: str) -> dict:
    out = io.StringIO()
    with override_settings(REDIS_URL=redis_url):
        call_command("consumers", "--json", stdout=out)
    return json.loads(out.getvalue())


async def assert_processed_once(want: dict[str, int], redis_url: str) -> None:
    """analytics and mentions processed exactly ``want`` (waiting for it), and once caught up
    (copies of processed events read and dropped) still exactly that."""

    async def all_processed() -> bool:
        return await counts() == want

    with contextlib.suppress(TimeoutError):  # the assertion below shows what is missing
        await async_wait_until(all_processed, timeout=60, what="every event processed")
    assert await counts() == want

    async def caught_up() -> bool:
        stats = await consumers_json(redis_url)
        return stats["analytics"]["lag"] == 0 and stats["mentions"]["lag"] == 0

    await async_wait_until(caught_up, what="no lag left")
    assert await counts() == want
