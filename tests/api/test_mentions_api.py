"""/api/mentions/: the caller's own mentions, newest first, and marking one read."""

from __future__ import annotations

import pytest

from chat import actions
from chat.models import Mention, Message
from tests.support.api import assert_error, token_client
from tests.support.inproc_worker import lag, run_until, worker

URL = "/api/mentions/"


def _mention(user, room, author, body: str) -> Mention:
    message = actions.post_message(author=author, room=room, body=body).message
    return Mention.objects.create(user=user, message=message)


@pytest.fixture
def mentions(alice, bob, lobby, secret_room):
    """bob is mentioned three times (lobby, secret, lobby), alice once."""
    return [
        _mention(bob, lobby, alice, "@bob one"),
        _mention(bob, secret_room, alice, "@bob two"),
        _mention(alice, lobby, bob, "@alice three"),
        _mention(bob, lobby, alice, "@bob four"),
    ]


def test_list_shows_only_own_mentions_newest_first(api, bob, mentions):
    data = api(bob).get(URL).json()

    assert [m["message"]["body"] for m in data] == ["@bob four", "@bob two", "@bob one"]
    first = data[0]
    assert set(first) == {"id", "message", "created_at", "read_at"}
    assert first["id"] == mentions[3].pk
    assert first["read_at"] is None
    assert first["message"] == {
        "id": mentions[3].message.pk,
        "room": "lobby",
        "seq": mentions[3].message.seq,
        "author": "alice",
        "body": "@bob four",
        "created_at": first["message"]["created_at"],
        "edited_at": None,
        "deleted_at": None,
        "change": mentions[3].message.change,
    }


def test_a_user_without_mentions_gets_an_empty_list(mallory, mentions):
    assert token_client(mallory).get(URL).json() == []


def test_marking_read_is_idempotent_and_filters_unread(api, bob, mentions):
    client = api(bob)
    target = mentions[0]

    response = client.post(f"{URL}{target.pk}/read/")

    assert response.status_code == 200
    read_at = response.json()["read_at"]
    assert read_at is not None
    target.refresh_from_db()
    assert target.read_at is not None
    # Again: the first read time stays.
    again = client.post(f"{URL}{target.pk}/read/").json()
    assert again["read_at"] == read_at

    unread = [m["message"]["body"] for m in client.get(URL, {"unread": "true"}).json()]
    assert unread == ["@bob four", "@bob two"]
    assert len(client.get(URL, {"unread": "1"}).json()) == 2
    assert len(client.get(URL, {"unread": "false"}).json()) == 3


def test_another_users_mention_is_a_404_and_stays_unread(alice, bob, mentions):
    alices = mentions[2]
    assert_error(token_client(bob).post(f"{URL}{alices.pk}/read/"), 404, "not_found")
    alices.refresh_from_db()
    assert alices.read_at is None


@pytest.mark.parametrize("mention_id", ["999999", "0", "9" * 30])
def test_an_unknown_mention_is_a_404(bob, mentions, mention_id):
    assert_error(token_client(bob).post(f"{URL}{mention_id}/read/"), 404, "not_found")


def test_at_most_200_are_listed_newest_first(alice, bob, lobby):
    messages = Message.objects.bulk_create(
        [
            Message(room=lobby, author=alice, body=f"@bob {n}", seq=n, change=n)
            for n in range(1, 206)
        ]
    )
    Mention.objects.bulk_create([Mention(user=bob, message=m) for m in messages])

    data = token_client(bob).get(URL).json()

    assert len(data) == 200
    assert [m["message"]["seq"] for m in data] == list(range(205, 5, -1))


@pytest.mark.django_db(transaction=True)
def test_a_mention_posted_over_rest_reaches_the_mentioned_user(alice, bob, lobby):
    """End to end: REST post -> outbox -> stream -> the mentions subscriber -> REST list."""
    with worker("mentions") as w:
        response = token_client(alice).post(
            "/api/rooms/lobby/messages/", {"body": "hey @bob, look"}, format="json"
        )
        assert response.status_code == 201
        run_until(w, lambda: lag("mentions") == 0, what="mentions caught up")

    data = token_client(bob).get(URL).json()
    assert [m["message"] for m in data] == [response.json()]
    assert token_client(alice).get(URL).json() == []
