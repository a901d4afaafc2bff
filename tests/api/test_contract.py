"""The contract test (issue 16 §2): docs/asyncapi.yaml and the OpenAPI document against real
traffic.

The whole suite's traffic is checked as it happens (tests.support.contract, installed by
tests/conftest.py: every /api/ response of Django's test client, every frame of the test
sockets). This module (1) shows the checker is not vacuous — an undocumented field, frame type,
header or status fails it — and (2) drives every frame type of every channel, in both
directions, through the checked sockets, so each is validated at least once whatever else runs.
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections
from django.http import JsonResponse
from django.test import override_settings

from broker import groups, registry
from broker.worker import Worker
from chat import actions
from chat.models import Message
from config.settings.base import PARLEY
from infra.redis_client import get_redis
from tests.support import contract
from tests.support.api import token_client
from tests.support.rooms import C
from tests.support.ws import Socket, open_path, open_socket

MESSAGE = {
    "id": 1,
    "room": "lobby",
    "seq": 1,
    "author": "alice",
    "body": "hi",
    "created_at": "2026-12-01T10:00:00.000000Z",
    "edited_at": None,
    "deleted_at": None,
}


# --- the checker fails what the documents do not say ---------------------------------------------
@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message.new", "change": 3, "message": MESSAGE, "extra": 1},  # a field
        {"type": "message.new", "change": 3, "message": {**MESSAGE, "likes": 2}},  # nested
        {"type": "message.new", "message": MESSAGE},  # live without change, replay without flag
        {"type": "message.new", "replay": True, "change": 3, "message": MESSAGE},  # both
        {"type": "sync.done", "seq": 1},  # a field always sent is missing
        {"type": "message.moved", "message": MESSAGE},  # a frame type
        {"type": "ready", "rooms": 1},  # a frame of another channel
        {"type": "message.ack", "client_id": None, "created": True, "message": MESSAGE}
        | {
            "message": {**MESSAGE, "created_at": "yesterday"}  # not a date-time
        },
        {"type": "error", "code": "no_such_code", "detail": "x"},  # a code
    ],
)
def test_an_undocumented_frame_fails(frame):
    with pytest.raises(contract.ContractError):
        contract.check_frame("/ws/rooms/lobby/", "server", frame)


def test_documented_frames_pass_and_close_codes_are_per_channel():
    contract.check_frame("/ws/rooms/lobby/", "server", {"type": "pong"})
    contract.check_frame(
        "/ws/rooms/lobby/", "server", {"type": "message.new", "change": 1, "message": MESSAGE}
    )
    contract.check_frame(
        "/ws/rooms/lobby/", "server", {"type": "message.new", "replay": True, "message": MESSAGE}
    )
    contract.check_close("/ws/rooms/lobby/", 4404)
    with pytest.raises(contract.ContractError):
        contract.check_close("/ws/dashboard/", 4404)  # the dashboard has no rooms
    with pytest.raises(contract.ContractError):
        contract.check_close("/ws/rooms/lobby/", 4999)
    with pytest.raises(contract.ContractError):
        contract.check_query("/ws/rooms/lobby/", "after_seq=1&since=3")


def _response(status: int, body: dict, **headers: str) -> JsonResponse:
    response = JsonResponse(body, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


ROOM = {
    "slug": "lobby",
    "title": "Lobby",
    "is_private": False,
    "last_seq": 0,
    "last_change": 0,
    "created_at": "2026-12-01T10:00:00Z",
    "role": None,
    "unread": None,
}


@pytest.mark.parametrize(
    ("method", "path", "response"),
    [
        ("GET", "/api/rooms/lobby/", _response(200, {**ROOM, "owner": "alice"})),  # a field
        ("GET", "/api/rooms/lobby/", _response(200, {**ROOM, "last_change": "0"})),  # a type
        ("GET", "/api/rooms/lobby/", _response(200, ROOM, **{"X-Parley-Debug": "1"})),  # header
        ("GET", "/api/rooms/lobby/", _response(409, {"code": "conflict", "detail": "x"})),  # status
        ("GET", "/api/rooms/lobby/", _response(404, {"code": "gone", "detail": "x"})),  # code
        (
            "GET",
            "/api/rooms/",
            _response(429, {"code": "throttled", "detail": "x"}),
        ),  # reads: no 429
        ("POST", "/api/rooms/lobby/join/", _response(429, {"code": "throttled", "detail": "x"})),
        ("GET", "/api/nothing/", _response(200, {})),  # no operation
    ],
)
def test_an_undocumented_response_fails(db, method, path, response):
    with pytest.raises(contract.ContractError):
        contract.check_response(method, path, response)


def test_an_unknown_method_is_checked_in_the_order_drf_answers(db):
    """Authentication comes before the method check: an anonymous PUT is 401, not 405."""
    from rest_framework.test import APIClient

    response = APIClient().put("/api/rooms/", {}, format="json")
    assert response.status_code == 401  # and checked by the client hook: no ContractError
    with pytest.raises(contract.ContractError):
        contract.check_response("PUT", "/api/rooms/", _response(409, {"code": "x", "detail": "y"}))


def test_documented_responses_pass(db):
    contract.check_response("GET", "/api/rooms/lobby/", _response(200, ROOM))
    contract.check_response(
        "POST",
        "/api/rooms/lobby/join/",
        _response(
            429,
            {"code": "throttled", "detail": "slow down"},
            **{"Retry-After": "5", "RateLimit-Limit": "120", "RateLimit-Remaining": "0"},
        ),
    )


# --- every frame of every channel, through the checked sockets ----------------------------------
@pytest_asyncio.fixture
async def _close_connections():
    yield
    await database_sync_to_async(connections.close_all)()


async def _until(sock: Socket, frame_type: str) -> dict:
    return await sock.next(lambda f: f["type"] == frame_type)


async def _frames_until(sock: Socket, frame_type: str) -> list[dict]:
    frames = [await sock.recv()]
    while frames[-1]["type"] != frame_type:
        frames.append(await sock.recv())
    return frames


@database_sync_to_async
def _history(lobby, alice) -> None:
    """seq 1 (edited), seq 2 (deleted): changes C + 1 to C + 4."""
    first = actions.post_message(author=alice, room=lobby, body="first").message
    second = actions.post_message(author=alice, room=lobby, body="second @bob").message
    actions.edit_message(user=alice, message=first, body="first, edited")
    actions.delete_message(user=alice, message=Message.objects.get(pk=second.pk))


def _rename(room, title: str) -> None:
    room.title = title
    room.save()


@database_sync_to_async
def _staff():
    return get_user_model().objects.create_user("root", password="pw-root", is_staff=True)


@database_sync_to_async
def _process_mentions() -> None:
    sub = registry.get("mentions")
    groups.ensure_groups(get_redis(), [sub])
    Worker(sub, stop=threading.Event()).step()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_close_connections")
async def test_every_documented_frame_is_exercised_and_matches(lobby, alice, bob, mallory):
    contract.SEEN.clear()
    await database_sync_to_async(groups.ensure_groups)(get_redis(), [registry.get("mentions")])
    await _history(lobby, alice)

    # Replays: new messages (replay, no change), then older edits and deletes (replay, change).
    fresh, frame = await open_socket(bob, query="after_seq=0")
    assert [(await fresh.recv())["type"], frame["type"]] == ["message.new", "message.new"]
    await fresh.disconnect()
    bob_sock, frame = await open_socket(bob, query=f"after_seq=2&after_change={C}&presence=1")
    assert frame["type"] == "message.edited" and frame["replay"] is True
    assert (await _until(bob_sock, "message.deleted"))["replay"] is True
    await _until(bob_sock, "sync.done")
    me, ready = await open_path("/ws/me/", bob)
    assert ready["type"] == "ready"

    # Presence, typing (client and server), live posts, acks, edits, deletes, pings.
    alice_sock, _ = await open_socket(alice, query="presence=1")
    await bob_sock.next(lambda f: f["type"] == "presence" and "alice" in f["online"])
    await alice_sock.send({"type": "typing"})
    assert (await _until(bob_sock, "typing"))["user"] == "alice"
    ack = await alice_sock.post("hello @bob", client_id=str(uuid.uuid4()))
    assert ack["type"] == "message.ack"
    new = await _until(bob_sock, "message.new")
    assert "replay" not in new and new["change"] == C + 5
    assert (await _until(me, "room.activity"))["seq"] == 3
    await _process_mentions()
    assert (await _until(me, "mention.new"))["message"]["seq"] == 3
    await me.send(json.dumps({"type": "ping"}))  # raw: /ws/me/ documents no client frame
    assert (await _until(me, "error"))["code"] == "unknown_type"
    message = await database_sync_to_async(Message.objects.get)(seq=3)
    await database_sync_to_async(actions.edit_message)(user=alice, message=message, body="hi")
    assert (await _until(bob_sock, "message.edited"))["change"] == C + 6
    await database_sync_to_async(actions.delete_message)(user=alice, message=message)
    assert (await _until(bob_sock, "message.deleted"))["change"] == C + 7
    # Room events: a member joins, the room is renamed, the member leaves.
    await database_sync_to_async(actions.join_room)(user=mallory, room=lobby)
    joined = await _until(bob_sock, "member.joined")
    assert (joined["change"], joined["member"]) == (C + 8, {"user": "mallory", "role": "member"})
    await database_sync_to_async(_rename)(lobby, "The lobby")
    assert (await _until(bob_sock, "room.updated"))["title"] == "The lobby"
    await database_sync_to_async(actions.leave_room)(user=mallory, room=lobby)
    assert (await _until(bob_sock, "member.left"))["reason"] == "left"
    await bob_sock.send({"type": "sync", "after_seq": 3, "after_change": C + 7})
    assert (await bob_sock.recv())["replay"] is True  # the room events again, replayed
    await _until(bob_sock, "sync.done")
    await bob_sock.send({"type": "ping"})
    await _until(bob_sock, "pong")

    # Errors: a refused post carries its client_id; a rate-limited one when to retry.
    await bob_sock.send("not json")
    assert (await _until(bob_sock, "error"))["code"] == "bad_json"
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 0}):
        refused = await bob_sock.post("too many")
    assert refused["code"] == "rate_limited" and refused["retry_after"] >= 1
    for sock in (bob_sock, alice_sock, me):
        await sock.disconnect()

    # The dashboard (staff), and the close codes of refusals.
    dashboard, frame = await open_path("/ws/dashboard/", await _staff())
    assert frame["type"] == "dashboard"
    await dashboard.disconnect()
    assert (await open_path("/ws/dashboard/", mallory))[1] == 4403
    assert (await open_path("/ws/me/", None))[1] == 4401
    assert (await open_socket(bob, "nowhere"))[1] == 4404
    assert (await open_socket(bob, query="after_seq=x"))[1] == 4400

    # /ws/: the room socket's frames, each tagged with its room, and the socket's own.
    mux, ready = await open_path("/ws/", bob)
    assert ready["type"] == "ready"
    await mux.send(
        {"type": "subscribe", "room": "lobby", "after_seq": 2, "after_change": 0, "presence": True}
    )
    replayed = {f["type"] for f in await _frames_until(mux, "sync.done")}
    assert {"message.new", "message.edited", "message.deleted"} <= replayed
    assert {"member.joined", "room.updated", "member.left"} <= replayed  # the room events
    assert (await _until(mux, "presence"))["online"] == ["bob"]
    alice_mux, _ = await open_path("/ws/", alice)
    await alice_mux.send({"type": "subscribe", "room": "lobby", "presence": True})
    await _until(alice_mux, "presence")
    await alice_mux.send({"type": "typing", "room": "lobby"})
    assert (await _until(mux, "typing"))["user"] == "alice"
    await alice_mux.disconnect()
    await mux.send({"type": "message.send", "room": "lobby", "body": "on /ws/"})
    assert (await _until(mux, "message.ack"))["room"] == "lobby"
    await _until(mux, "message.new")
    await mux.send({"type": "sync", "room": "lobby", "after_seq": 3, "after_change": 7})
    await _until(mux, "sync.done")
    await mux.send({"type": "unsubscribe", "room": "nowhere"})
    assert (await _until(mux, "error"))["code"] == "not_subscribed"
    await mux.send({"type": "unsubscribe", "room": "lobby"})
    await _until(mux, "unsubscribed")
    await mux.send({"type": "ping"})
    await _until(mux, "pong")
    await mux.disconnect()

    missing = contract.documented_frames() - contract.SEEN
    assert not missing, f"documented but never exercised: {sorted(missing)}"


def test_a_rest_retry_is_documented_with_its_headers(alice, lobby):
    """The Idempotent-Replayed and RateLimit-* headers pass the checker on real responses."""
    client = token_client(alice)
    for expected in (201, 200):
        response = client.post(
            "/api/rooms/lobby/messages/",
            {"body": "once"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="contract-1",
        )
        assert response.status_code == expected
        assert "RateLimit-Remaining" in response
    assert json.loads(response.content)["seq"] == 1
