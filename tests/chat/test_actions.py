"""post_message: the one place a message is posted from (WebSocket, REST, admin, shell)."""

from __future__ import annotations

import uuid

import pytest
from django.test import override_settings

from chat import actions, idempotency
from chat.models import Message
from config.settings.base import PARLEY


@pytest.mark.django_db(transaction=True)
def test_post_saves_and_publishes(lobby, bob, stream_events):
    result = actions.post_message(author=bob, room=lobby, body="hi")
    assert result.created
    assert result.message.seq == 1
    assert [e["payload"]["message"]["body"] for e in stream_events()] == ["hi"]


@pytest.mark.django_db(transaction=True)
def test_same_client_id_creates_one_message(lobby, bob, stream_events):
    client_id = uuid.uuid4()
    first = actions.post_message(author=bob, room=lobby, body="once", client_id=client_id)
    again = actions.post_message(author=bob, room=lobby, body="once", client_id=client_id)
    assert first.created and not again.created
    assert again.message.pk == first.message.pk
    assert Message.objects.count() == 1
    assert len(stream_events()) == 1


@pytest.mark.django_db(transaction=True)
def test_client_id_of_another_room_is_refused(lobby, secret_room, bob):
    client_id = uuid.uuid4()
    actions.post_message(author=bob, room=lobby, body="here", client_id=client_id)
    with pytest.raises(actions.ActionError) as err:
        actions.post_message(author=bob, room=secret_room, body="there", client_id=client_id)
    assert err.value.code == "client_id_reused"
    assert Message.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_client_id_reused_for_another_body_is_refused(lobby, bob):
    client_id = uuid.uuid4()
    actions.post_message(author=bob, room=lobby, body="first", client_id=client_id)
    with pytest.raises(actions.ActionError) as err:
        actions.post_message(author=bob, room=lobby, body="second", client_id=client_id)
    assert err.value.code == "client_id_reused"
    # The batch form (the WebSocket path) answers the same, before and within a batch.
    again, twice = uuid.uuid4(), actions.PostRequest
    results = actions.post_messages(
        [
            twice(bob, lobby, "second", client_id),
            twice(bob, lobby, "one", again),
            twice(bob, lobby, "two", again),
            twice(bob, lobby, "one", again),
        ]
    )
    codes = [r.code if isinstance(r, actions.ActionError) else r.created for r in results]
    assert codes == ["client_id_reused", True, "client_id_reused", False]
    assert list(Message.objects.values_list("body", flat=True)) == ["first", "one"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (None, "body_required"),
        ("", "body_required"),
        ("   \n", "body_required"),
        (42, "body_required"),
        (["list"], "body_required"),
        ("x" * 4001, "body_too_long"),
        ("nul \x00 inside", "body_invalid"),
        ("lone \ud800 surrogate", "body_invalid"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_invalid_body_is_refused_and_changes_nothing(lobby, bob, stream_events, body, code):
    with pytest.raises(actions.ActionError) as err:
        actions.post_message(author=bob, room=lobby, body=body)
    assert err.value.code == code
    assert Message.objects.count() == 0
    assert stream_events() == []


@pytest.mark.django_db(transaction=True)
def test_longest_allowed_body_is_accepted(lobby, bob):
    assert actions.post_message(author=bob, room=lobby, body="é" * 4000).created


@pytest.mark.django_db(transaction=True)
def test_non_member_cannot_post_to_private_room(secret_room, mallory, stream_events):
    with pytest.raises(actions.ActionError) as err:
        actions.post_message(author=mallory, room=secret_room, body="let me in")
    assert err.value.code == "forbidden"
    assert Message.objects.count() == 0
    assert stream_events() == []


@pytest.mark.django_db(transaction=True)
def test_rate_limit_refuses_beyond_the_limit_but_retries_are_free(lobby, bob):
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 3}):
        ids = [uuid.uuid4() for _ in range(3)]
        for client_id in ids:
            actions.post_message(author=bob, room=lobby, body="x", client_id=client_id)
        # A retry of an already created message is answered, not counted.
        assert not actions.post_message(author=bob, room=lobby, body="x", client_id=ids[0]).created
        with pytest.raises(actions.ActionError) as err:
            actions.post_message(author=bob, room=lobby, body="one too many")
    assert err.value.code == "rate_limited"
    assert Message.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_join_public_room_is_idempotent_and_private_needs_invitation(lobby, secret_room, mallory):
    assert actions.join_room(user=mallory, room=lobby) == actions.join_room(
        user=mallory, room=lobby
    )
    with pytest.raises(actions.ActionError):
        actions.join_room(user=mallory, room=secret_room)


# --- post_messages: the batch form the WebSocket path uses ------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_batch_answers_each_request_as_post_message_would(
    lobby, secret_room, bob, mallory, stream_events
):
    retried = uuid.uuid4()
    earlier = actions.post_message(author=bob, room=lobby, body="earlier", client_id=retried)
    twice = uuid.uuid4()
    Req = actions.PostRequest
    results = actions.post_messages(
        [
            Req(bob, lobby, "one"),
            Req(bob, lobby, "   "),  # refused: empty
            Req(bob, lobby, "earlier", retried),  # a retry of a post made before the batch
            Req(bob, secret_room, "in secret"),
            Req(mallory, secret_room, "let me in"),  # refused: not a member
            Req(bob, lobby, "two", twice),
            Req(bob, lobby, "two", twice),  # the same post twice in one batch
            Req(bob, secret_room, "elsewhere", retried),  # refused: client_id of another room
            Req(bob, lobby, "three"),
        ]
    )
    codes = [r.code if isinstance(r, actions.ActionError) else None for r in results]
    assert codes == [None, "body_required", None, None, "forbidden", None, None,
                     "client_id_reused", None]  # fmt: skip
    assert [(r.message.seq, r.created) for r in results if isinstance(r, actions.PostResult)] == [
        (2, True),
        (1, False),
        (1, True),
        (3, True),
        (3, False),
        (4, True),
    ]
    assert results[2].message.pk == earlier.message.pk
    assert results[6].message.pk == results[5].message.pk
    lobby_bodies = list(Message.objects.filter(room=lobby).order_by("seq").values_list("body"))
    assert lobby_bodies == [("earlier",), ("one",), ("two",), ("three",)]
    published = [(e["room"], e["seq"]) for e in stream_events()]
    assert published == [("lobby", 1), ("lobby", 2), ("lobby", 3), ("lobby", 4), ("secret", 1)]


@pytest.mark.django_db(transaction=True)
def test_a_batch_counts_against_the_rate_limit(lobby, bob):
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 3}):
        requests = [actions.PostRequest(bob, lobby, f"m{i}") for i in range(5)]
        results = actions.post_messages(requests)
    codes = [getattr(r, "code", None) for r in results]
    assert codes == [None, None, None, "rate_limited", "rate_limited"]
    assert Message.objects.count() == 3
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 3}):  # a batch all refused
        [refused] = actions.post_messages([actions.PostRequest(bob, lobby, "one more")])
    assert refused.code == "rate_limited" and Message.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_loses_a_client_id_race_answers_one_by_one(
    lobby, bob, stream_events, monkeypatch
):
    """Another process created one of the batch's client_ids between the batch's check and its
    write: the batch's INSERT fails as a whole, and each request is answered on its own."""
    raced = uuid.uuid4()
    actions.post_message(author=bob, room=lobby, body="won the race", client_id=raced)
    monkeypatch.setattr(idempotency, "existing_client_ids", lambda wanted: {})  # the check missed
    results = actions.post_messages(
        [
            actions.PostRequest(bob, lobby, "a"),
            actions.PostRequest(bob, lobby, "won the race", raced),
        ]
    )
    assert [(r.message.seq, r.created) for r in results] == [(2, True), (1, False)]
    assert [e["seq"] for e in stream_events()] == [1, 2]
