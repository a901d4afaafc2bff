"""Stream trimming keeps memory bounded but never drops what a group still needs."""

from __future__ import annotations

import logging

import pytest

from broker import retention
from infra.redis_client import get_redis

TOPIC = "chat.message"


@pytest.fixture
def client(settings):
    settings.PARLEY_BROKER = {
        **settings.PARLEY_BROKER,
        "STREAM_MAXLEN": 10,
        "STREAM_HARD_MAXLEN": 20,
    }
    return get_redis()


def add(client, n: int) -> list[str]:
    return [client.xadd(TOPIC, {"event": f"{i}"}).decode() for i in range(n)]


def read(client, group: str, count: int) -> list[str]:
    [(_, entries)] = client.xreadgroup(group, "c1", {TOPIC: ">"}, count=count)
    return [sid.decode() for sid, _ in entries]


def kept(client) -> list[str]:
    return [sid.decode() for sid, _ in client.xrange(TOPIC)]


def test_without_groups_a_stream_is_trimmed_to_maxlen(client):
    ids = add(client, 15)
    result = retention.trim_topic(client, TOPIC)
    assert (result.trimmed, result.dropped_unconsumed) == (5, 0)
    assert kept(client) == ids[5:]


def test_short_streams_are_left_alone(client):
    ids = add(client, 10)
    assert retention.trim_topic(client, TOPIC).trimmed == 0
    assert kept(client) == ids


def test_unacknowledged_entries_are_never_trimmed(client):
    ids = add(client, 18)
    client.xgroup_create(TOPIC, "g1", id="0")
    delivered = read(client, "g1", 12)
    client.xack(TOPIC, "g1", *delivered[:3])  # 9 pending, 6 never delivered

    retention.trim_topic(client, TOPIC)

    assert kept(client) == ids[3:]  # longer than maxlen: every entry g1 still needs stays


def test_the_slowest_group_decides(client):
    ids = add(client, 18)
    client.xgroup_create(TOPIC, "fast", id="0")
    client.xack(TOPIC, "fast", *read(client, "fast", 18))
    client.xgroup_create(TOPIC, "slow", id="0")
    client.xack(TOPIC, "slow", *read(client, "slow", 4))

    retention.trim_topic(client, TOPIC)

    assert kept(client) == ids[4:]


def test_once_everything_is_consumed_the_stream_shrinks_to_maxlen(client):
    ids = add(client, 18)
    client.xgroup_create(TOPIC, "g1", id="0")
    client.xack(TOPIC, "g1", *read(client, "g1", 18))

    retention.trim_topic(client, TOPIC)

    assert kept(client) == ids[8:]


def test_over_the_hard_cap_unconsumed_events_are_dropped_loudly(client, caplog):
    ids = add(client, 26)
    client.xgroup_create(TOPIC, "asleep", id="0")  # has consumed nothing

    with caplog.at_level(logging.ERROR, logger="parley.broker"):
        result = retention.trim_topic(client, TOPIC)

    assert kept(client) == ids[6:]  # the hard cap, 20
    assert result.dropped_unconsumed == 6
    assert int(client.hget(retention.dropped_key(), TOPIC)) == 6
    assert "dropped 6 events not yet consumed" in caplog.text
