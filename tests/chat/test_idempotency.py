"""Idempotency keys have one meaning (issue 16 §3): the WebSocket's ``client_id`` and REST's
``Idempotency-Key`` are one namespace per user (a retry may switch transport), remembered as long
as the message exists, and a key reused for another body or room is refused."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.db import connections

from chat import actions, idempotency
from chat.models import Message
from tests.support.api import assert_error, token_client
from tests.support.ws import open_socket

LOBBY = "/api/rooms/lobby/messages/"


def _rest_post(user, body: str, key: str, slug: str = "lobby"):
    return token_client(user).post(
        f"/api/rooms/{slug}/messages/", {"body": body}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )


@pytest_asyncio.fixture
async def _close_connections():
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_close_connections")
async def test_a_retry_may_switch_transport_both_ways(lobby, bob, secret_room):
    rest = database_sync_to_async(_rest_post)
    sock, _ = await open_socket(bob)

    # Posted over the socket, retried over REST: the same message.
    key = str(uuid.uuid4())
    ack = await sock.post("from the socket", client_id=key)
    assert ack["type"] == "message.ack" and ack["created"] is True
    retried = await rest(bob, "from the socket", key)
    assert retried.status_code == 200 and retried["Idempotent-Replayed"] == "true"
    assert {k: v for k, v in retried.json().items() if k != "change"} == ack["message"]
    # The same key for another body or another room is refused, over either transport.
    assert_error(await rest(bob, "something else", key), 409, "idempotency_key_reused")
    assert_error(
        await rest(bob, "from the socket", key, slug="secret"), 409, "idempotency_key_reused"
    )
    reused = await sock.post("something else", client_id=key)
    assert (reused["type"], reused["code"]) == ("error", "client_id_reused")

    # Posted over REST with a UUID key, retried over the socket: the same message.
    key = str(uuid.uuid4())
    posted = await rest(bob, "from REST", key)
    assert posted.status_code == 201
    ack = await sock.post("from REST", client_id=key)
    assert ack["type"] == "message.ack" and ack["created"] is False
    assert ack["message"]["seq"] == posted.json()["seq"]

    await sock.disconnect()
    assert await database_sync_to_async(Message.objects.count)() == 2


def test_a_key_is_remembered_while_its_message_exists_edited_or_deleted(alice, lobby):
    first = _rest_post(alice, "once", "k-1")
    assert first.status_code == 201
    message = Message.objects.get()
    actions.edit_message(user=alice, message=message, body="changed my mind")
    retried = _rest_post(alice, "once", "k-1")  # the retry of the original request
    assert retried.status_code == 200
    assert retried.json()["body"] == "changed my mind"  # the message as it now is

    actions.delete_message(user=alice, message=Message.objects.get())
    retried = _rest_post(alice, "once", "k-1")
    assert retried.status_code == 200 and retried.json()["deleted_at"] is not None
    assert Message.objects.count() == 1


def test_a_key_that_is_not_a_uuid_maps_to_its_documented_uuid(alice, lobby):
    key = "order-42"
    assert _rest_post(alice, "hi", key).status_code == 201
    expected = uuid.uuid5(idempotency.KEY_NAMESPACE, key)
    assert Message.objects.get().client_id == expected == idempotency.client_id_of_key(key)
    # A UUID key is the UUID itself, in any spelling uuid.UUID reads.
    same = uuid.uuid4()
    assert idempotency.client_id_of_key(str(same).upper()) == same
