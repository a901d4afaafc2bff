"""Durable connection events (chat.presence): coalesced per user and room, and rated, so socket
churn writes a bounded number of outbox rows. Real sockets, Redis and database."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chat import actions, limits, online, presence, relay
from chat.models import OutboxEvent
from contract import events
from infra.redis_client import get_redis
from tests.support.events import published_events
from tests.support.ws import open_path, open_socket

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("disconnect_leftover_sockets"),
]


@database_sync_to_async
def _presence_rows() -> list[tuple[str, str, str]]:
    """(type, user, session) of every recorded connection event, oldest first."""
    rows = OutboxEvent.objects.filter(topic=events.TOPIC_PRESENCE).order_by("pk")
    return [
        (row.type, row.event["payload"]["user"], row.event["payload"]["session"]) for row in rows
    ]


async def test_a_users_sockets_in_a_room_make_one_presence_session(lobby, alice, bob):
    first, _ = await open_socket(bob)
    second, _ = await open_socket(bob)
    theirs, _ = await open_socket(alice)
    await first.disconnect()
    assert [(t, u) for t, u, _ in await _presence_rows()] == [
        (events.USER_CONNECTED, "bob"),
        (events.USER_CONNECTED, "alice"),
    ]
    await second.disconnect()  # bob's last socket: his session ends, under its first id
    await theirs.disconnect()
    rows = await _presence_rows()
    assert [(t, u) for t, u, _ in rows] == [
        (events.USER_CONNECTED, "bob"),
        (events.USER_CONNECTED, "alice"),
        (events.USER_DISCONNECTED, "bob"),
        (events.USER_DISCONNECTED, "alice"),
    ]
    assert rows[0][2] == rows[2][2] and rows[1][2] == rows[3][2] and rows[0][2] != rows[1][2]


async def test_connect_disconnect_churn_writes_bounded_rows(lobby, bob, monkeypatch):
    monkeypatch.setitem(settings.PARLEY, "PRESENCE_SESSIONS_PER_MINUTE", 5)
    for _ in range(200):
        sock, frame = await open_socket(bob)
        assert frame["type"] == "sync.done"
        await sock.disconnect()
    rows = await _presence_rows()
    # Five sessions per minute (the loop may straddle a minute's end: twice that), each a pair.
    assert 10 <= len(rows) <= 20
    connected = [s for t, _, s in rows if t == events.USER_CONNECTED]
    disconnected = [s for t, _, s in rows if t == events.USER_DISCONNECTED]
    assert connected == disconnected  # every recorded session is closed, none half-recorded


async def test_sockets_of_a_dead_process_stop_counting(lobby, bob):
    # A socket of a killed process: its entry expired a second ago, its session was recorded.
    sockets, session = presence._keys(lobby, bob)
    get_redis().zadd(sockets, {"dead": time.time() - 1})
    get_redis().set(session, "dead")
    sock, _ = await open_socket(bob)
    await sock.disconnect()
    rows = await _presence_rows()
    assert [t for t, _, _ in rows] == [events.USER_CONNECTED, events.USER_DISCONNECTED]
    assert rows[0][2] == rows[1][2] != "dead"


# --- connection events in batches ------------------------------------------------------------
@database_sync_to_async
def _members(room, count: int) -> list:
    users = []
    for i in range(count):
        user = get_user_model().objects.create_user(f"member{i}", password="pw")
        actions.join_room(user=user, room=room)
        users.append(user)
    return users


def _count_calls(monkeypatch, module, name: str) -> list:
    """The calls of ``module.name`` (still called through), one entry each."""
    calls, real = [], getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


async def test_a_burst_of_connection_events_is_one_transaction_and_one_flush(
    lobby, secret_room, alice, bob, monkeypatch
):
    flushes = _count_calls(monkeypatch, relay, "flush_after_commit")
    publishes = _count_calls(monkeypatch, relay, "publish_rows")
    transactions = _count_calls(monkeypatch, presence, "record_connections")
    # Fifty sockets' events submitted while no batch is in the database: one batch. Each
    # socket's user.connected comes before its user.disconnected (an open and close at once).
    recorded = []
    for i in range(25):
        for type in (events.USER_CONNECTED, events.USER_DISCONNECTED):
            user = (alice, bob)[i % 2]
            recorded.append(presence.record(type, user=user, room=lobby, session=f"s{i}"))
    recorded.append(presence.record(events.USER_CONNECTED, user=bob, room=secret_room, session="x"))
    await asyncio.gather(*recorded)

    assert len(transactions) == 1 and len(transactions[0][0]) == 51
    assert len(flushes) == 2 and len(publishes) == 2  # one per room
    on_stream = [
        (e["type"], e["payload"]["session"]) for e in published_events(events.TOPIC_PRESENCE)
    ]
    pairs = (events.USER_CONNECTED, events.USER_DISCONNECTED)
    assert on_stream == [
        *[(t, f"s{i}") for i in range(25) for t in pairs],
        (events.USER_CONNECTED, "x"),
    ]


async def test_sockets_opening_and_closing_at_once_record_each_pair_in_order(lobby):
    users = await _members(lobby, 20)

    async def open_and_close(user) -> None:
        sock, frame = await open_socket(user)
        assert frame["type"] == "sync.done"
        await sock.disconnect()

    await asyncio.gather(*(open_and_close(user) for user in users))
    rows = await _presence_rows()
    assert len(rows) == 40
    for user in users:
        mine = [(t, s) for t, u, s in rows if u == user.username]
        assert [t for t, _ in mine] == [events.USER_CONNECTED, events.USER_DISCONNECTED]
        assert mine[0][1] == mine[1][1]
    stream = published_events(events.TOPIC_PRESENCE)
    assert [(e["type"], e["payload"]["user"], e["payload"]["session"]) for e in stream] == rows


async def test_a_socket_over_the_cap_records_no_presence_and_is_not_online(
    lobby, alice, bob, monkeypatch
):
    monkeypatch.setitem(settings.PARLEY, "MAX_SOCKETS_PER_USER", 1)
    me, ready = await open_path("/ws/me/", bob)
    assert ready["type"] == "ready"
    watcher, _ = await open_socket(alice, query="presence=1")
    refused, code = await open_socket(bob)
    assert code == limits.CLOSE_TOO_MANY_SOCKETS
    await refused.disconnect()
    assert [(t, u) for t, u, _ in await _presence_rows()] == [(events.USER_CONNECTED, "alice")]
    online_now = get_redis().zrange(f"parley:online:{lobby.pk}", 0, -1)
    assert [m.decode().split("|")[0] for m in online_now] == ["alice"]
    sockets, session = presence._keys(lobby, bob)
    assert not get_redis().exists(sockets, session, f"{sockets}:{int(time.time() // 60)}")
    assert get_redis().zcard(limits.sockets_key(bob.pk)) == 1  # the /ws/me/ socket's place
    await watcher.disconnect()
    await me.disconnect()


@pytest.mark.timeout(60)
async def test_with_redis_unreachable_a_socket_opens_and_records_its_own_pair(
    lobby, bob, monkeypatch, caplog
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = aioredis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(online, "redis_client", lambda: unreachable)
    caplog.set_level(logging.WARNING)
    sock, frame = await open_socket(bob, query="presence=1")
    assert frame["type"] == "sync.done"
    await sock.disconnect()
    rows = await _presence_rows()
    assert [t for t, _, _ in rows] == [events.USER_CONNECTED, events.USER_DISCONNECTED]
    assert rows[0][2] == rows[1][2]
    warned = {r.getMessage().split(",")[0] for r in caplog.records if r.levelno == logging.WARNING}
    assert {"socket cap not enforced", "presence not coalesced", "presence not updated"} <= warned
    await unreachable.aclose()
