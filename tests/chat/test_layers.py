"""The channel layer (chat/layers.py) and its fan-out hub (chat/hub.py), on a private Redis:
channels-redis' group_send reaches the hub's listeners, one subscriber connection serves them
all, the last listener unsubscribes, and a Redis restart is announced to every listener."""

from __future__ import annotations

import asyncio
import logging

import pytest
import pytest_asyncio
import redis

from chat.layers import RECONNECTED, ParleyChannelLayer

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


class Inbox:
    """A listener's callback that keeps what it is given and wakes whoever waits for more."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.changed = asyncio.Event()

    def __call__(self, message: dict) -> None:
        self.messages.append(message)
        self.changed.set()

    async def wait_for(self, count: int, timeout: float = 10) -> list[dict]:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.messages


@pytest_asyncio.fixture
async def layer(private_redis):
    layer = ParleyChannelLayer(url=private_redis.url, prefix="t")
    yield layer
    await layer.flush()


def pubsub_clients(server) -> list[dict]:
    return redis.Redis.from_url(server.url).client_list(_type="pubsub")


async def test_group_send_reaches_listeners_of_that_group_only(layer):
    lobby, other = Inbox(), Inbox()
    await layer.listen("room.1", "a", lobby)
    await layer.listen("room.2", "b", other)
    await layer.group_send("room.1", {"type": "chat.message", "n": 1})
    await layer.group_send("room.1", {"type": "chat.message", "n": 2})
    assert [m["n"] for m in await lobby.wait_for(2)] == [1, 2]
    assert other.messages == []


async def test_every_listener_shares_one_subscriber_connection(layer, private_redis):
    inboxes = [Inbox() for _ in range(6)]
    for i, inbox in enumerate(inboxes):
        await layer.listen(f"room.{i % 3}", i, inbox)
    assert len(pubsub_clients(private_redis)) == 1
    [client] = pubsub_clients(private_redis)
    assert client["sub"] == "3"  # three groups, one SUBSCRIBE each
    await layer.group_send("room.0", {"type": "x"})
    await inboxes[0].wait_for(1)
    await inboxes[3].wait_for(1)


async def test_the_last_listener_unsubscribes(layer, private_redis):
    client = redis.Redis.from_url(private_redis.url)
    channel = layer.group_channel_name("room.1")
    await layer.listen("room.1", "a", Inbox())
    await layer.listen("room.1", "b", Inbox())
    await layer.unlisten("room.1", "a")
    assert client.pubsub_numsub(channel) == [(channel.encode(), 1)]
    await layer.unlisten("room.1", "b")
    # UNSUBSCRIBE is written, not awaited: Redis applies it after its reply to this other
    # connection may already have been sent, so wait (bounded) for the count to reach 0.
    await _numsub_becomes(client, channel, 0)
    await layer.unlisten("room.1", "b")  # again: nothing to do


async def _numsub_becomes(client, channel: str, expected: int, deadline: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while client.pubsub_numsub(channel) != [(channel.encode(), expected)]:
        assert loop.time() < end, f"{channel} still has {client.pubsub_numsub(channel)}"
        await asyncio.sleep(0.01)


async def test_a_failing_listener_costs_the_others_nothing(layer, caplog):
    def broken(message: dict) -> None:
        raise RuntimeError("boom")

    kept = Inbox()
    await layer.listen("room.1", "broken", broken)
    await layer.listen("room.1", "kept", kept)
    with caplog.at_level(logging.ERROR, logger="parley.layer"):
        await layer.group_send("room.1", {"type": "chat.message"})
        await kept.wait_for(1)
    assert "a listener failed on chat.message" in caplog.text


async def test_a_redis_restart_is_announced_to_every_listener(layer, private_redis, caplog):
    first, second = Inbox(), Inbox()
    await layer.listen("room.1", "a", first)
    await layer.listen("room.2", "b", second)
    with caplog.at_level(logging.WARNING, logger="parley.layer"):
        private_redis.stop()
        private_redis.start()
        assert await first.wait_for(1) == [RECONNECTED]
        assert await second.wait_for(1) == [RECONNECTED]
    assert "Redis subscription lost" in caplog.text
    assert "Redis subscription restored" in caplog.text
    # Both subscriptions are back: a group_send reaches each listener.
    await layer.group_send("room.2", {"type": "after"})
    assert (await second.wait_for(2))[1] == {"type": "after"}


async def test_a_reconnect_announcement_reaches_listeners_not_channels(layer):
    """Consumers with a channel of their own (the dashboard) have no handler for it."""
    inbox = Inbox()
    await layer.listen("room.1", "a", inbox)
    channel = await layer.new_channel()
    await layer.group_add("dashboard", channel)
    layer._get_layer().announce_reconnect()
    assert await inbox.wait_for(1) == [RECONNECTED]
    await layer.group_send("dashboard", {"type": "chat.signal", "frame": "{}"})
    async with asyncio.timeout(10):
        assert await layer.receive(channel) == {"type": "chat.signal", "frame": "{}"}
