"""Durable connection events (chat.presence): coalesced per user and room, and rated, so socket
churn writes a bounded number of outbox rows. Real sockets, Redis and database."""

from __future__ import annotations

import time

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from chat import presence
from chat.models import OutboxEvent
from contract import events
from infra.redis_client import get_redis
from tests.support.ws import open_socket

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
