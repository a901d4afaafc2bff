"""/api/rooms/<slug>/messages/: posting (validation, idempotency, limits) and paging by seq."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import override_settings

from chat import actions
from chat.models import Message, Room
from config.settings.base import PARLEY
from tests.support.api import assert_error, token_client
from tests.support.rooms import C

URL = "/api/rooms/{}/messages/"
LOBBY = URL.format("lobby")


def _post(client, body, slug: str = "lobby", **headers):
    return client.post(URL.format(slug), {"body": body}, format="json", **headers)


# --- posting -------------------------------------------------------------------------------------
def test_post_returns_the_saved_message(api, alice, bob, lobby):
    response = _post(api(bob), "hello there")

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    data = response.json()
    message = Message.objects.get()
    assert data == {
        "id": message.pk,
        "room": "lobby",
        "seq": 1,
        "author": "bob",
        "body": "hello there",
        "created_at": data["created_at"],
        "edited_at": None,
        "deleted_at": None,
        "change": C + 1,
    }
    assert message.created_at.isoformat().startswith(data["created_at"][:19])
    lobby.refresh_from_db()
    assert lobby.last_seq == 1
    assert _post(api(alice), "second").json()["seq"] == 2


def test_whitespace_and_unicode_are_kept_as_sent(alice, lobby):
    body = "  two spaces, an emoji 🎉, a newline\nand a tab\t "
    assert _post(token_client(alice), body).json()["body"] == body
    assert Message.objects.get().body == body


def test_anyone_may_post_to_a_public_room_but_only_members_to_a_private_one(
    alice, mallory, lobby, secret_room
):
    client = token_client(mallory)
    assert _post(client, "hi all").status_code == 201
    assert_error(_post(client, "hi?", slug="secret"), 404, "not_found")
    assert list(Message.objects.values_list("room__slug", flat=True)) == ["lobby"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("", 400, "body_required"),
        ("   \n\t ", 400, "body_required"),
        ("x" * 4001, 413, "body_too_long"),
        ("nul\x00inside", 400, "body_invalid"),
    ],
)
def test_invalid_bodies_are_refused_with_a_stable_code(api, alice, lobby, body, status, code):
    assert_error(_post(api(alice), body), status, code)
    assert not Message.objects.exists()
    lobby.refresh_from_db()
    assert lobby.last_seq == 0


def test_the_longest_body_is_accepted(alice, lobby):
    assert _post(token_client(alice), "é" * 4000).status_code == 201


@pytest.mark.parametrize(
    "data", [{}, {"body": None}, {"body": True}, {"body": 123}, {"text": "hi"}, ["hi"]]
)
def test_a_missing_or_mistyped_body_gets_the_websockets_code(alice, lobby, data):
    """The action judges the body as sent, over REST as over the WebSocket: a number is not
    quietly turned into text."""
    response = token_client(alice).post(LOBBY, data, format="json")
    assert_error(response, 400, "body_required")
    assert not Message.objects.exists()


def test_a_lone_surrogate_is_refused(alice, lobby):
    response = token_client(alice).post(
        LOBBY, b'{"body": "half \\ud800 a pair"}', content_type="application/json"
    )
    assert_error(response, 400, "body_invalid")
    assert not Message.objects.exists()


def test_malformed_json_is_a_400(alice, lobby):
    response = token_client(alice).post(LOBBY, b'{"body": "hi"', content_type="application/json")
    assert_error(response, 400, "parse_error")
    assert not Message.objects.exists()


def test_a_form_post_is_an_unsupported_media_type(alice, lobby):
    response = token_client(alice).post(LOBBY, {"body": "hi"})  # multipart
    assert_error(response, 415, "unsupported_media_type")
    assert not Message.objects.exists()


def test_a_request_body_over_the_upload_limit_is_a_413(alice, lobby):
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    payload = json.dumps({"body": "hi", "padding": padding})
    response = token_client(alice).post(LOBBY, payload, content_type="application/json")
    assert_error(response, 413, "request_too_large")
    assert not Message.objects.exists()

    # The same anywhere in the API, e.g. creating a room.
    payload = json.dumps({"slug": "big", "title": "Big", "padding": padding})
    response = token_client(alice).post("/api/rooms/", payload, content_type="application/json")
    assert_error(response, 413, "request_too_large")
    assert not Room.objects.filter(slug="big").exists()


def test_a_request_body_just_under_the_limit_is_parsed(alice, lobby):
    payload = json.dumps({"body": "hi", "padding": ""})
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - len(payload))
    payload = json.dumps({"body": "hi", "padding": padding})
    assert len(payload) == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = token_client(alice).post(LOBBY, payload, content_type="application/json")
    assert response.status_code == 201


def test_posting_is_rate_limited_with_retry_after(alice, bob, lobby):
    client = token_client(alice)
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 2}):
        assert _post(client, "one").status_code == 201
        assert _post(client, "two").status_code == 201
        response = _post(client, "three")
        assert_error(response, 429, "rate_limited")
        window = PARLEY["RATE_LIMIT_WINDOW_SECONDS"]
        assert 1 <= int(response["Retry-After"]) <= window  # what is left of the window
        # Per user: bob still posts.
        assert _post(token_client(bob), "bob's").status_code == 201
    assert list(Message.objects.order_by("seq").values_list("body", flat=True)) == [
        "one",
        "two",
        "bob's",
    ]


def test_the_rate_limit_is_shared_with_other_channels(alice, lobby):
    """The limit is the user's, whatever the way in: posts made elsewhere count too."""
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 2}):
        actions.post_message(author=alice, room=lobby, body="from the socket")
        actions.post_message(author=alice, room=lobby, body="from the admin")
        assert_error(_post(token_client(alice), "from REST"), 429, "rate_limited")


# --- Idempotency-Key -----------------------------------------------------------------------------
def test_a_retry_with_the_same_key_returns_the_same_message(api, alice, lobby):
    client = api(alice)
    first = _post(client, "once", HTTP_IDEMPOTENCY_KEY="retry-1")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first

    again = _post(client, "once", HTTP_IDEMPOTENCY_KEY="retry-1")
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Message.objects.count() == 1
    lobby.refresh_from_db()
    assert lobby.last_seq == 1

    # Another key is another message.
    other = _post(client, "once", HTTP_IDEMPOTENCY_KEY="retry-2")
    assert other.status_code == 201
    assert other.json()["seq"] == 2


def test_a_replay_is_not_counted_against_the_rate_limit(alice, lobby):
    client = token_client(alice)
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 1}):
        assert _post(client, "once", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
        for _ in range(3):
            assert _post(client, "once", HTTP_IDEMPOTENCY_KEY="k").status_code == 200
        assert_error(_post(client, "new"), 429, "rate_limited")


def test_the_same_key_of_another_user_is_another_message(alice, bob, lobby):
    assert _post(token_client(alice), "a", HTTP_IDEMPOTENCY_KEY="shared").status_code == 201
    response = _post(token_client(bob), "b", HTTP_IDEMPOTENCY_KEY="shared")
    assert response.status_code == 201
    assert response.json()["author"] == "bob"
    assert Message.objects.count() == 2


def test_a_key_reused_for_another_room_is_a_409(alice, lobby, secret_room):
    client = token_client(alice)
    assert _post(client, "here", HTTP_IDEMPOTENCY_KEY="k1").status_code == 201

    response = _post(client, "there", slug="secret", HTTP_IDEMPOTENCY_KEY="k1")
    assert_error(response, 409, "idempotency_key_reused")
    assert list(Message.objects.values_list("room__slug", "body")) == [("lobby", "here")]


def test_a_key_reused_with_another_body_is_a_409_not_the_first_message(api, alice, lobby):
    client = api(alice)
    assert _post(client, "first", HTTP_IDEMPOTENCY_KEY="k1").status_code == 201

    response = _post(client, "something else", HTTP_IDEMPOTENCY_KEY="k1")
    assert_error(response, 409, "idempotency_key_reused")
    assert list(Message.objects.values_list("body", flat=True)) == ["first"]


def test_a_retry_after_an_edit_is_still_a_retry(alice, lobby):
    """The fingerprint is of the request, not of the message as it is now."""
    client = token_client(alice)
    first = _post(client, "typo", HTTP_IDEMPOTENCY_KEY="k1").json()
    client.patch(f"/api/rooms/lobby/messages/{first['seq']}/", {"body": "fixed"}, format="json")

    again = _post(client, "typo", HTTP_IDEMPOTENCY_KEY="k1")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json()["body"] == "fixed"
    assert_error(_post(client, "fixed", HTTP_IDEMPOTENCY_KEY="k1"), 409, "idempotency_key_reused")


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_an_empty_or_too_long_key_is_a_400(alice, lobby, key):
    response = _post(token_client(alice), "hi", HTTP_IDEMPOTENCY_KEY=key)
    assert_error(response, 400, "invalid_idempotency_key")
    assert not Message.objects.exists()


def test_a_key_of_200_characters_is_accepted(alice, lobby):
    client = token_client(alice)
    assert _post(client, "hi", HTTP_IDEMPOTENCY_KEY="k" * 200).status_code == 201
    assert _post(client, "hi", HTTP_IDEMPOTENCY_KEY="k" * 200).status_code == 200


# --- paging --------------------------------------------------------------------------------------
@pytest.fixture
def ten_messages(alice, bob, lobby):
    """Ten messages in the lobby, seq 1..10, alternately by alice and bob."""
    for n in range(1, 11):
        actions.post_message(author=alice if n % 2 else bob, room=lobby, body=f"m{n}")
    return lobby


def _page(client, **params) -> dict:
    response = client.get(LOBBY, params)
    assert response.status_code == 200, response.content
    data = response.json()
    assert set(data) == {"results", "next_after_seq", "prev_before_seq", "last_seq", "last_change"}
    return data


def _seqs(page: dict) -> list[int]:
    return [m["seq"] for m in page["results"]]


def test_without_a_position_the_newest_page_comes_oldest_first(api, bob, ten_messages):
    page = _page(api(bob), limit=3)
    assert _seqs(page) == [8, 9, 10]
    assert [m["body"] for m in page["results"]] == ["m8", "m9", "m10"]
    assert page["results"][0] == {
        "id": page["results"][0]["id"],
        "room": "lobby",
        "seq": 8,
        "author": "bob",
        "body": "m8",
        "created_at": page["results"][0]["created_at"],
        "edited_at": None,
        "deleted_at": None,
        "change": C + 8,
    }
    assert page["next_after_seq"] is None  # this is the newest
    assert page["prev_before_seq"] == 8


def test_paging_forward_visits_every_message_once(bob, ten_messages):
    client = token_client(bob)
    seen, pages, after = [], [], 0
    while after is not None:
        page = _page(client, after_seq=after, limit=3)
        pages.append(_seqs(page))
        seen += _seqs(page)
        after = page["next_after_seq"]
    assert pages == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    assert seen == list(range(1, 11))


def test_paging_backward_visits_every_message_once(bob, ten_messages):
    client = token_client(bob)
    page = _page(client, limit=3)
    pages = [_seqs(page)]
    while page["prev_before_seq"] is not None:
        page = _page(client, before_seq=page["prev_before_seq"], limit=3)
        pages.append(_seqs(page))
    assert pages == [[8, 9, 10], [5, 6, 7], [2, 3, 4], [1]]
    assert page["next_after_seq"] == 1  # and from there, forward again


def test_page_links_at_the_edges(bob, ten_messages):
    client = token_client(bob)
    everything = _page(client, limit=200)
    assert _seqs(everything) == list(range(1, 11))
    assert everything["next_after_seq"] is None
    assert everything["prev_before_seq"] is None

    first = _page(client, after_seq=0, limit=1)
    assert (_seqs(first), first["prev_before_seq"], first["next_after_seq"]) == ([1], None, 1)
    last = _page(client, before_seq=11, limit=1)
    assert (_seqs(last), last["prev_before_seq"], last["next_after_seq"]) == ([10], 10, None)
    middle = _page(client, after_seq=4, limit=2)
    assert (_seqs(middle), middle["prev_before_seq"], middle["next_after_seq"]) == ([5, 6], 5, 6)

    for beyond in (_page(client, after_seq=10), _page(client, after_seq=10**12)):
        assert beyond == {
            "results": [],
            "next_after_seq": None,
            "prev_before_seq": None,
            "last_seq": 10,
            "last_change": C + 10,
        }
    assert _page(client, before_seq=1) == {
        "results": [],
        "next_after_seq": None,
        "prev_before_seq": None,
        "last_seq": 10,
        "last_change": C + 10,
    }


def test_an_empty_room_has_an_empty_page(alice, lobby):
    assert _page(token_client(alice)) == {
        "results": [],
        "next_after_seq": None,
        "prev_before_seq": None,
        "last_seq": 0,
        "last_change": C,
    }


def test_a_page_holds_only_that_room(alice, bob, ten_messages, secret_room):
    actions.post_message(author=alice, room=secret_room, body="elsewhere")
    assert {m["room"] for m in _page(token_client(bob), limit=200)["results"]} == {"lobby"}


def test_the_default_limit_is_50(alice, lobby):
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 1000}):
        for n in range(55):
            actions.post_message(author=alice, room=lobby, body=f"m{n}")
    page = _page(token_client(alice))
    assert _seqs(page) == list(range(6, 56))
    assert _seqs(_page(token_client(alice), after_seq=0)) == list(range(1, 51))


def test_a_page_is_what_rest_posted(api, alice, lobby):
    client = api(alice)
    posted = [_post(client, f"p{n}").json() for n in range(3)]
    assert _page(client)["results"] == posted


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after_seq": 1, "before_seq": 5}, "non_field_errors"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after_seq": -1}, "after_seq"),
        ({"after_seq": "x"}, "after_seq"),
        ({"after_seq": 2**62 + 1}, "after_seq"),
        ({"before_seq": 0}, "before_seq"),
        ({"before_seq": "1.5"}, "before_seq"),
    ],
)
def test_invalid_page_parameters_are_a_400(alice, ten_messages, params, field):
    response = token_client(alice).get(LOBBY, params)
    body = assert_error(response, 400, "invalid")
    assert list(body["fields"]) == [field]


@pytest.mark.parametrize("limit", [1, 200])
def test_limit_bounds_are_accepted(alice, ten_messages, limit):
    assert len(_page(token_client(alice), limit=limit)["results"]) == min(limit, 10)


# --- edit and delete: PATCH / DELETE /api/rooms/<slug>/messages/<seq>/ ---------------------------
@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("ops", is_staff=True)


def _one(room, author, body: str = "original") -> Message:
    return actions.post_message(author=author, room=room, body=body).message


def test_the_author_edits_a_message(api, alice, bob, lobby):
    message = _one(lobby, bob)

    response = api(bob).patch(f"{LOBBY}{message.seq}/", {"body": "changed"}, format="json")

    assert response.status_code == 200
    data = response.json()
    assert (data["id"], data["seq"], data["author"], data["body"]) == (
        message.pk,
        message.seq,
        "bob",
        "changed",
    )
    assert data["edited_at"] is not None and data["deleted_at"] is None
    message.refresh_from_db()
    assert (message.body, message.seq) == ("changed", 1)
    lobby.refresh_from_db()
    assert lobby.last_seq == 1  # an edit is no new message
    # The page shows it as it now is.
    assert _page(token_client(alice))["results"] == [data]


def test_only_the_author_edits_even_the_owner_may_not(alice, bob, mallory, lobby):
    message = _one(lobby, bob)
    for user in (alice, mallory):
        response = token_client(user).patch(f"{LOBBY}1/", {"body": "hijack"}, format="json")
        assert_error(response, 403, "forbidden")
    message.refresh_from_db()
    assert (message.body, message.edited_at) == ("original", None)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("", 400, "body_required"),
        (" ", 400, "body_required"),
        ("x" * 4001, 413, "body_too_long"),
        ("a\x00b", 400, "body_invalid"),
    ],
)
def test_an_edit_is_validated_like_a_post(bob, lobby, body, status, code):
    message = _one(lobby, bob)
    assert_error(token_client(bob).patch(f"{LOBBY}1/", {"body": body}, format="json"), status, code)
    message.refresh_from_db()
    assert message.body == "original"


def test_delete_leaves_a_tombstone_and_is_idempotent(api, bob, lobby):
    message = _one(lobby, bob)
    client = api(bob)

    response = client.delete(f"{LOBBY}{message.seq}/")

    assert response.status_code == 200
    data = response.json()
    assert (data["seq"], data["body"]) == (1, "")
    assert data["deleted_at"] is not None
    message.refresh_from_db()
    assert message.deleted_at is not None and message.body == ""
    # Again: nothing changes.
    assert client.delete(f"{LOBBY}1/").json() == data
    # A deleted message is not edited back.
    assert_error(
        client.patch(f"{LOBBY}1/", {"body": "undo"}, format="json"), 409, "message_deleted"
    )
    # The seqs stay gapless: the next message is 2, and paging shows the tombstone.
    assert _post(client, "next").json()["seq"] == 2
    assert [(m["seq"], m["body"]) for m in _page(client)["results"]] == [(1, ""), (2, "next")]


def test_who_may_delete(alice, bob, mallory, staff, lobby, secret_room):
    by_alice = _one(lobby, alice, "alice's")
    by_bob = _one(lobby, bob, "bob's")
    # A member may not delete someone else's message; nor may a non-member.
    assert_error(token_client(bob).delete(f"{LOBBY}{by_alice.seq}/"), 403, "forbidden")
    assert_error(token_client(mallory).delete(f"{LOBBY}{by_alice.seq}/"), 403, "forbidden")
    by_alice.refresh_from_db()
    assert by_alice.deleted_at is None
    # The room's owner moderates; a moderator too; staff may anywhere.
    assert token_client(alice).delete(f"{LOBBY}{by_bob.seq}/").status_code == 200
    lobby.memberships.filter(user=bob).update(role="moderator")
    assert token_client(bob).delete(f"{LOBBY}{by_alice.seq}/").status_code == 200
    third = _one(lobby, alice, "third")
    assert token_client(staff).delete(f"{LOBBY}{third.seq}/").status_code == 200
    assert Message.objects.filter(deleted_at__isnull=True).count() == 0


@pytest.mark.parametrize("method", ["patch", "delete"])
@pytest.mark.parametrize("seq", ["2", "0", "9" * 30])
def test_an_unknown_seq_is_a_404(alice, lobby, method, seq):
    _one(lobby, alice)
    response = getattr(token_client(alice), method)(f"{LOBBY}{seq}/", {"body": "x"}, format="json")
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("path", ["abc/", "-1/", "1/extra/", "1/edit/"])
def test_a_url_that_names_no_endpoint_is_a_json_404(alice, lobby, path):
    _one(lobby, alice)
    response = token_client(alice).patch(f"{LOBBY}{path}", {"body": "x"}, format="json")
    assert_error(response, 404, "not_found")
    assert Message.objects.get().body == "original"
