"""What a program needs to compose REST and the WebSocket (issue 16 §4): change numbers over
REST (a room's ``last_change``, each message's ``change``), ``GET /api/me/``, and the REST
rate-limit headers."""

from __future__ import annotations

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.db import connections
from django.test import override_settings

from chat import actions, selectors
from chat.models import Message
from config.settings.base import PARLEY
from tests.support.api import assert_error, token_client
from tests.support.rooms import SECRET_CHANGES, C
from tests.support.ws import open_socket

LOBBY = "/api/rooms/lobby/messages/"


# --- change numbers over REST --------------------------------------------------------------------
def test_messages_carry_the_change_of_their_latest_state(alice, bob, lobby):
    for n in range(3):
        actions.post_message(author=alice, room=lobby, body=f"m{n}")
    actions.edit_message(user=alice, message=Message.objects.get(seq=1), body="edited")
    client = token_client(bob)

    page = client.get(LOBBY).json()
    assert [(m["seq"], m["change"]) for m in page["results"]] == [
        (1, C + 4),
        (2, C + 2),
        (3, C + 3),
    ]
    assert (page["last_seq"], page["last_change"]) == (3, C + 4)
    room = client.get("/api/rooms/lobby/").json()
    assert (room["last_seq"], room["last_change"]) == (3, C + 4)
    posted = client.post(LOBBY, {"body": "new"}, format="json").json()
    assert (posted["seq"], posted["change"]) == (4, C + 5)


@pytest_asyncio.fixture
async def _close_connections():
    yield
    await database_sync_to_async(connections.close_all)()


@database_sync_to_async
def _page_everything_while_the_room_changes(lobby, alice, bob) -> tuple[dict, int, int]:
    """Page the room forward over REST, two at a time, while alice edits a message already
    paged and posts; return the copy and the documented resume position (highest seq paged,
    smallest last_change of the pages)."""
    client = token_client(bob)
    copy, seq, change, after = {}, 0, None, 0
    while after is not None:
        page = client.get(LOBBY, {"after_seq": after, "limit": 2}).json()
        for message in page["results"]:
            copy[message["seq"]] = {k: v for k, v in message.items() if k != "change"}
            seq = max(seq, message["seq"])
        change = page["last_change"] if change is None else min(change, page["last_change"])
        if after == 0:  # after the first page: changes the later pages do not show
            actions.edit_message(user=alice, message=Message.objects.get(seq=1), body="edited")
            actions.delete_message(user=alice, message=Message.objects.get(seq=2))
        after = page["next_after_seq"]
    return copy, seq, change


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_close_connections")
async def test_paging_over_rest_then_resuming_the_socket_from_the_page_position_converges(
    lobby, alice, bob
):
    for n in range(5):
        await database_sync_to_async(actions.post_message)(author=alice, room=lobby, body=f"m{n}")
    copy, seq, change = await _page_everything_while_the_room_changes(lobby, alice, bob)
    assert copy[1]["body"] == "m0" and copy[2]["deleted_at"] is None  # paged before the changes

    sock, frame = await open_socket(bob, query=f"after_seq={seq}&after_change={change}")
    replayed = []
    while frame["type"] != "sync.done":
        copy[frame["message"]["seq"]] = frame["message"]
        replayed.append(frame["message"]["seq"])
        frame = await sock.recv()
    await sock.disconnect()

    assert replayed == [1, 2]  # exactly what the pages missed, nothing more
    truth = await database_sync_to_async(
        lambda: {
            m["seq"]: m
            for m, _ in selectors.messages_after(room_id=lobby.pk, after_seq=0, limit=100)
        }
    )()
    assert copy == truth
    assert (frame["seq"], frame["change"]) == (5, C + 7)


# --- GET /api/me/ --------------------------------------------------------------------------------
def test_me_says_who_i_am_and_my_rooms_with_positions(api, alice, bob, mallory, lobby, secret_room):
    for n in range(3):
        actions.post_message(author=alice, room=secret_room, body=f"s{n}")
    actions.mark_read(user=bob, room=secret_room, seq=2)
    actions.edit_message(user=alice, message=Message.objects.get(seq=1), body="edited")

    me = api(bob).get("/api/me/")
    assert me.status_code == 200
    assert me.json() == {
        "id": bob.pk,
        "username": "bob",
        "is_staff": False,
        "rooms": [
            {
                "slug": "lobby",
                "title": "Lobby",
                "is_private": False,
                "role": "member",
                "last_seq": 0,
                "last_change": C,
                "last_read_seq": 0,
                "unread": 0,
            },
            {
                "slug": "secret",
                "title": "Secret",
                "is_private": True,
                "role": "member",
                "last_seq": 3,
                "last_change": SECRET_CHANGES + 4,
                "last_read_seq": 2,
                "unread": 1,
            },
        ],
    }
    # Public rooms one is not in are not "my rooms".
    assert api(mallory).get("/api/me/").json()["rooms"] == []


def test_me_needs_authentication(db):
    from rest_framework.test import APIClient

    assert_error(APIClient().get("/api/me/"), 401, "not_authenticated")


# --- rate-limit headers --------------------------------------------------------------------------
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def _rate(response) -> tuple[int, int, int]:
    return tuple(int(response[h]) for h in RATE_HEADERS)


def test_posts_say_where_the_message_limit_stands_and_429_says_when_to_retry(alice, lobby):
    client = token_client(alice)
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 2}):
        first = client.post(LOBBY, {"body": "one"}, format="json")
        second = client.post(LOBBY, {"body": "two"}, format="json")
        refused = client.post(LOBBY, {"body": "three"}, format="json")
    window = PARLEY["RATE_LIMIT_WINDOW_SECONDS"]
    assert _rate(first)[:2] == (2, 1) and 1 <= _rate(first)[2] <= window
    assert _rate(second)[:2] == (2, 0)
    assert_error(refused, 429, "rate_limited")
    limit, remaining, reset = _rate(refused)
    assert (limit, remaining) == (2, 0)
    assert 1 <= int(refused["Retry-After"]) <= window
    assert abs(int(refused["Retry-After"]) - reset) <= 1


def test_other_writes_say_where_the_write_limit_stands(alice, lobby):
    client = token_client(alice)
    with override_settings(PARLEY={**PARLEY, "API_WRITES_PER_MINUTE": 2}):
        joined = client.post("/api/rooms/lobby/join/")
        client.post("/api/rooms/lobby/join/")
        throttled = client.post("/api/rooms/lobby/join/")
    assert _rate(joined)[:2] == (2, 1) and 1 <= _rate(joined)[2] <= 60
    assert_error(throttled, 429, "throttled")
    assert _rate(throttled)[:2] == (2, 0)
    assert int(throttled["Retry-After"]) == _rate(throttled)[2]


def test_reads_count_against_nothing_and_carry_no_rate_headers(alice, lobby):
    response = token_client(alice).get(LOBBY)
    assert response.status_code == 200
    assert not any(h in response for h in RATE_HEADERS)
