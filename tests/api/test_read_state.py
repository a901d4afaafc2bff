"""POST /api/rooms/<slug>/read/: the read position only moves forward, up to the newest message,
and the room list's unread counts follow it."""

from __future__ import annotations

import pytest

from chat import actions
from chat.models import Membership
from tests.support.api import assert_error, token_client

READ = "/api/rooms/{}/read/"


@pytest.fixture
def five(alice, lobby):
    """The lobby with five messages (seq 1..5)."""
    for n in range(5):
        actions.post_message(author=alice, room=lobby, body=f"m{n}")
    return lobby


def _read(client, seq, slug: str = "lobby"):
    return client.post(READ.format(slug), {"seq": seq}, format="json")


def _position(user, room) -> int:
    return Membership.objects.get(user=user, room=room).last_read_seq


def _unread(client) -> dict:
    return {r["slug"]: r["unread"] for r in client.get("/api/rooms/").json()}


def test_marking_read_moves_the_position_and_the_unread_count(api, bob, five):
    client = api(bob)
    assert _unread(client) == {"lobby": 5}

    response = _read(client, 2)

    assert response.status_code == 200
    data = response.json()
    assert (data["user"], data["room"], data["role"], data["last_read_seq"]) == (
        "bob",
        "lobby",
        "member",
        2,
    )
    assert _position(bob, five) == 2
    assert _unread(client) == {"lobby": 3}
    assert client.get("/api/rooms/lobby/").json()["unread"] == 3


def test_the_position_never_moves_backwards(bob, five):
    client = token_client(bob)
    assert _read(client, 4).json()["last_read_seq"] == 4
    for seq in (3, 1, 0, 4):
        response = _read(client, seq)
        assert response.status_code == 200
        assert response.json()["last_read_seq"] == 4
    assert _position(bob, five) == 4
    assert _unread(client) == {"lobby": 1}


def test_the_position_is_clamped_to_the_newest_message(bob, alice, five):
    client = token_client(bob)
    assert _read(client, 10**12).json()["last_read_seq"] == 5
    assert _position(bob, five) == 5
    assert _unread(client) == {"lobby": 0}

    # A newer message is unread again, and can be read in turn.
    actions.post_message(author=alice, room=five, body="m6")
    assert _unread(client) == {"lobby": 1}
    assert _read(client, 2**62).json()["last_read_seq"] == 6
    assert _unread(client) == {"lobby": 0}


def test_reading_an_empty_room_stays_at_zero(bob, lobby):
    assert _read(token_client(bob), 3).json()["last_read_seq"] == 0
    assert _position(bob, lobby) == 0


def test_each_member_has_their_own_position(alice, bob, five):
    _read(token_client(bob), 3)
    assert _position(bob, five) == 3
    assert _position(alice, five) == 0
    assert _unread(token_client(alice)) == {"lobby": 5}


def test_a_non_member_of_a_public_room_must_join_first(mallory, five):
    client = token_client(mallory)
    assert_error(_read(client, 1), 403, "not_a_member")
    assert not Membership.objects.filter(user=mallory).exists()

    client.post("/api/rooms/lobby/join/")
    assert _read(client, 1).json()["last_read_seq"] == 1


def test_an_outsider_of_a_private_room_is_refused(alice, mallory, secret_room):
    actions.post_message(author=alice, room=secret_room, body="hidden")
    assert_error(_read(token_client(mallory), 1, slug="secret"), 404, "not_found")
    assert not Membership.objects.filter(user=mallory).exists()


def test_an_unknown_room_is_a_404(bob, lobby):
    assert_error(_read(token_client(bob), 1, slug="nowhere"), 404, "not_found")


@pytest.mark.parametrize(
    "data", [{}, {"seq": -1}, {"seq": "two"}, {"seq": None}, {"seq": 2**62 + 1}]
)
def test_an_invalid_seq_is_a_400_and_changes_nothing(bob, five, data):
    response = token_client(bob).post(READ.format("lobby"), data, format="json")
    body = assert_error(response, 400, "invalid")
    assert list(body["fields"]) == ["seq"]
    assert _position(bob, five) == 0
