"""A message posted over REST is pushed to every socket of the room, like any other; and the
WebSocket accepts an API token (header or subprotocol) instead of a session cookie.

The real ASGI application runs in-process with the real Redis channel layer; the REST calls run
in a worker thread (database_sync_to_async), so their transactions commit and publish.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from accounts.models import ApiToken
from accounts.tokens import create_token, revoke_token
from config.asgi import application
from tests.support import ws
from tests.support.api import token_client
from tests.support.ws import Socket, open_socket, session_cookie

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("disconnect_leftover_sockets"),
]

LOBBY = "/ws/rooms/lobby/"


async def _connect(path=LOBBY, *, headers=(), subprotocols=()):
    """(socket, accepted, subprotocol chosen or close code, first frame or close code)."""
    comm = ws.WebsocketCommunicator(
        application, path, headers=list(headers), subprotocols=list(subprotocols)
    )
    accepted, detail = await comm.connect(timeout=ws.TIMEOUT)
    socket = Socket(comm)
    if not accepted:
        return socket, False, detail, detail
    try:
        first = await socket.recv()
    except ws.Closed as closed:
        first = closed.code
    return socket, True, detail, first


def _auth(raw: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {raw}".encode())


@database_sync_to_async
def _rest_post(user, body: str, slug: str = "lobby", **headers):
    response = token_client(user).post(
        f"/api/rooms/{slug}/messages/", {"body": body}, format="json", **headers
    )
    return response.status_code, dict(response.items()), _as_on_the_socket(response.json())


def _as_on_the_socket(message: dict) -> dict:
    """A REST message as socket frames carry it: REST adds its change number."""
    return {k: v for k, v in message.items() if k != "change"}


@database_sync_to_async
def _token(user) -> tuple[int, str]:
    token, raw = create_token(user=user, name="ws")
    return token.pk, raw


# --- REST -> WebSocket ---------------------------------------------------------------------------
async def test_a_rest_post_is_pushed_to_every_socket_of_the_room(alice, bob, lobby):
    alice_socket, alice_first = await open_socket(alice)
    bob_socket, bob_first = await open_socket(bob)
    assert alice_first["type"] == bob_first["type"] == "sync.done"

    status, _, message = await _rest_post(alice, "hello from REST")

    assert status == 201
    for socket in (alice_socket, bob_socket):
        frame = await socket.next(lambda f: f["type"] == "message.new")
        assert frame["message"] == message
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_an_idempotent_replay_is_not_pushed_again(alice, bob, lobby):
    socket, _ = await open_socket(bob)
    status, _, first = await _rest_post(alice, "once", HTTP_IDEMPOTENCY_KEY="k")
    assert status == 201
    assert (await socket.messages(until_seq=first["seq"]))[-1] == first

    status, headers, again = await _rest_post(alice, "once", HTTP_IDEMPOTENCY_KEY="k")
    assert (status, headers["Idempotent-Replayed"], again) == (200, "true", first)

    # The next message.new is the next message, not a second copy of the first.
    _, _, sentinel = await _rest_post(alice, "sentinel")
    frame = await socket.next(lambda f: f["type"] == "message.new")
    assert frame["message"] == sentinel
    assert sentinel["seq"] == first["seq"] + 1
    await socket.disconnect()


async def test_a_refused_rest_post_pushes_nothing(alice, bob, mallory, lobby, secret_room):
    socket, _ = await open_socket(bob, "secret")
    status, _, error = await _rest_post(mallory, "let me in", slug="secret")
    assert (status, error["code"]) == (404, "not_found")
    status, _, error = await _rest_post(alice, "", slug="secret")
    assert (status, error["code"]) == (400, "body_required")

    _, _, sentinel = await _rest_post(alice, "sentinel", slug="secret")
    frame = await socket.next(lambda f: f["type"] == "message.new")
    assert frame["message"] == sentinel
    assert sentinel["seq"] == 1
    await socket.disconnect()


@database_sync_to_async
def _rest_change(user, method: str, seq: int, body: str | None = None):
    client = token_client(user)
    url = f"/api/rooms/lobby/messages/{seq}/"
    response = (
        client.patch(url, {"body": body}, format="json")
        if method == "patch"
        else (client.delete(url))
    )
    assert response.status_code == 200, response.content
    return _as_on_the_socket(response.json())


async def test_rest_edits_and_deletes_are_pushed_with_the_rest_payload(alice, bob, lobby):
    socket, _ = await open_socket(bob)
    _, _, posted = await _rest_post(alice, "first draft")
    edited = await _rest_change(alice, "patch", posted["seq"], "second draft")
    deleted = await _rest_change(alice, "delete", posted["seq"])

    frames = [await socket.next(lambda f: f["type"].startswith("message.")) for _ in range(3)]

    assert [(f["type"], f["message"]) for f in frames] == [
        ("message.new", posted),
        ("message.edited", edited),
        ("message.deleted", deleted),
    ]
    await socket.disconnect()


# --- token authentication of the WebSocket -------------------------------------------------------
async def test_a_token_in_the_authorization_header_authenticates_the_socket(alice, bob, lobby):
    _, raw = await _token(bob)
    socket, accepted, subprotocol, first = await _connect(headers=[_auth(raw)])

    assert accepted
    assert subprotocol is None  # none was offered
    assert first["type"] == "sync.done"
    # The socket is bob's: what it posts is bob's, and it receives REST posts.
    ack = await socket.post("from bob's socket")
    assert ack["type"] == "message.ack"
    new = await socket.next(lambda f: f["type"] == "message.new")
    assert new["message"]["author"] == "bob"
    _, _, message = await _rest_post(alice, "from REST")
    frame = await socket.next(lambda f: f["type"] == "message.new")
    assert frame["message"] == message
    await socket.disconnect()


async def test_a_token_offered_as_a_subprotocol_authenticates_and_is_never_echoed(
    alice, bob, lobby
):
    _, raw = await _token(bob)
    socket, accepted, subprotocol, first = await _connect(subprotocols=["parley", f"bearer.{raw}"])

    assert accepted
    assert subprotocol == "parley"
    assert first["type"] == "sync.done"
    ack = await socket.post("via subprotocol")
    assert ack["type"] == "message.ack"
    new = await socket.next(lambda f: f["type"] == "message.new")
    assert new["message"]["author"] == "bob"
    await socket.disconnect()


async def test_the_token_subprotocol_is_never_selected_even_alone(bob, lobby):
    _, raw = await _token(bob)
    socket, accepted, subprotocol, first = await _connect(subprotocols=[f"bearer.{raw}"])
    assert accepted
    assert subprotocol is None
    assert first["type"] == "sync.done"
    await socket.disconnect()


async def test_a_token_works_from_a_browser_origin_too(bob, lobby):
    _, raw = await _token(bob)
    socket, accepted, subprotocol, first = await _connect(
        headers=[(b"origin", ws.ORIGIN)],
        subprotocols=["parley", f"bearer.{raw}"],
    )
    assert (accepted, subprotocol, first["type"]) == (True, "parley", "sync.done")
    await socket.disconnect()


@pytest.mark.parametrize("where", ["header", "subprotocol"])
async def test_a_bad_token_closes_4401_even_with_a_valid_session_cookie(bob, lobby, where):
    cookie = (b"cookie", (await database_sync_to_async(session_cookie)(bob)).encode())
    # The cookie alone is enough...
    socket, accepted, _, first = await _connect(headers=[cookie])
    assert accepted and first["type"] == "sync.done"
    await socket.disconnect()

    # ...but a presented token that is wrong is never replaced by it.
    bad = "plt_not-a-real-token"
    if where == "header":
        options = {"headers": [cookie, _auth(bad)]}
    else:
        options = {"headers": [cookie], "subprotocols": ["parley", f"bearer.{bad}"]}
    socket, accepted, _, code = await _connect(**options)

    assert code == 4401
    if accepted:
        assert await socket.comm.receive_nothing(timeout=0.1)


async def test_a_revoked_token_closes_4401(bob, lobby):
    token_id, raw = await _token(bob)
    assert await database_sync_to_async(revoke_token)(token_id=token_id)
    for options in ({"headers": [_auth(raw)]}, {"subprotocols": ["parley", f"bearer.{raw}"]}):
        _, _, _, code = await _connect(**options)
        assert code == 4401


async def test_an_expired_token_closes_4401(bob, lobby):
    token_id, raw = await _token(bob)
    past = timezone.now() - timedelta(seconds=1)
    await database_sync_to_async(ApiToken.objects.filter(pk=token_id).update)(expires_at=past)
    for options in ({"headers": [_auth(raw)]}, {"subprotocols": ["parley", f"bearer.{raw}"]}):
        _, _, _, code = await _connect(**options)
        assert code == 4401


async def test_a_tokens_user_is_held_to_the_rooms_rules(mallory, secret_room, lobby):
    _, raw = await _token(mallory)
    _, _, _, code = await _connect("/ws/rooms/secret/", headers=[_auth(raw)])
    assert code == 4404  # as if it did not exist
    _, _, _, code = await _connect("/ws/rooms/nowhere/", headers=[_auth(raw)])
    assert code == 4404
