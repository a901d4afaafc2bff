"""The room WebSocket through the real router, session auth, Redis layer and database."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat import actions
from chat.models import Message
from tests.support.ws import open_socket

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def test_post_over_websocket_is_acked_and_pushed_to_both_clients(lobby, alice, bob):
    a, hello_a = await open_socket(alice)
    b, hello_b = await open_socket(bob)
    assert hello_a == hello_b == {"type": "sync.done", "seq": 0}

    ack = await a.post("hello")

    assert ack["type"] == "message.ack" and ack["created"] is True
    assert ack["message"]["seq"] == 1 and ack["message"]["body"] == "hello"
    for sock in (a, b):
        [message] = await sock.messages(until_seq=1)
        assert message == ack["message"]
    await a.disconnect()
    await b.disconnect()


async def test_orm_create_in_another_thread_is_pushed(lobby, alice, bob):
    a, _ = await open_socket(alice)
    await database_sync_to_async(Message.objects.create)(room=lobby, author=bob, body="from ORM")
    await database_sync_to_async(actions.post_message)(author=bob, room=lobby, body="action")
    assert [m["body"] for m in await a.messages(until_seq=2)] == ["from ORM", "action"]
    await a.disconnect()
