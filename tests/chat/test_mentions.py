"""``@username`` mentions: the parser, and the mentions subscriber run by an in-process Worker."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from broker.models import DeadLetter, ProcessedEvent
from chat import actions, relay
from chat.mentions import mentioned_usernames
from chat.models import Mention, OutboxEvent
from contract import events
from infra.redis_client import get_redis
from tests.support.inproc_worker import lag, run_until, worker

SUB = "mentions"


# --- the parser ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("@bob hi", {"bob"}),
        ("hi @bob", {"bob"}),
        ("@bob and @carol, and @dave", {"bob", "carol", "dave"}),
        ("@bob @bob @bob", {"bob"}),
        # Punctuation after the name ends it.
        ("@bob, look", {"bob"}),
        ("thanks @bob.", {"bob"}),
        ("thanks @bob...", {"bob"}),
        ("@bob: look", {"bob"}),
        ("@bob! @carol?", {"bob", "carol"}),
        ("(@bob)", {"bob"}),
        ("@bob's idea", {"bob"}),
        ("line one\n@bob", {"bob"}),
        # Django usernames may hold . + - _ (and @) inside.
        ("@bob.smith.", {"bob.smith"}),
        ("@mary-jane_2 hi", {"mary-jane_2"}),
        # E-mail addresses and the like are not mentions.
        ("write to x@bob.com", set()),
        ("bob@example.org", set()),
        ("mail alice@bob.com or ask @carol", {"carol"}),
        # A doubled @ is not a mention (nor is a lone @, or an @ followed by dots only).
        ("@@bob", set()),
        ("@ bob", set()),
        ("@", set()),
        ("and so @...", set()),
        ("no mention here", set()),
    ],
)
def test_mentioned_usernames(body, expected):
    assert mentioned_usernames(body) == expected


# --- end to end ----------------------------------------------------------------------------------
@pytest.fixture
def mentions_worker(db):
    """The mentions subscriber starts at "now": its group exists before anything is posted."""
    with worker(SUB) as w:
        yield w


def _process(w) -> None:
    run_until(w, lambda: lag(SUB) == 0, what="mentions caught up")


def _mentions() -> list[tuple[str, int]]:
    return sorted(Mention.objects.values_list("user__username", "message_id"))


@pytest.mark.django_db(transaction=True)
def test_a_mention_notifies_that_user_about_that_message(mentions_worker, alice, bob, lobby):
    other = actions.post_message(author=alice, room=lobby, body="nothing to see").message
    message = actions.post_message(author=alice, room=lobby, body="@bob hi").message

    _process(mentions_worker)

    mention = Mention.objects.get()
    assert mention.user == bob
    assert mention.message == message != other
    assert mention.read_at is None
    assert ProcessedEvent.objects.filter(subscriber=SUB).count() == 2


@pytest.mark.django_db(transaction=True)
def test_mentioning_yourself_notifies_nobody(mentions_worker, alice, lobby):
    actions.post_message(author=alice, room=lobby, body="note to self @alice")

    _process(mentions_worker)

    assert _mentions() == []


@pytest.mark.django_db(transaction=True)
def test_unknown_usernames_are_ignored(mentions_worker, alice, bob, lobby):
    get_user_model().objects.create_user("carol", password="pw-carol")
    message = actions.post_message(
        author=alice, room=lobby, body="@nobody @bob @ghost, @carol and @Bobby"
    ).message

    _process(mentions_worker)

    assert _mentions() == [("bob", message.pk), ("carol", message.pk)]


@pytest.mark.django_db(transaction=True)
def test_several_messages_in_one_batch(mentions_worker, alice, bob, lobby):
    first = actions.post_message(author=alice, room=lobby, body="@bob one").message
    second = actions.post_message(author=bob, room=lobby, body="@alice two").message
    third = actions.post_message(author=alice, room=lobby, body="@bob three").message

    _process(mentions_worker)

    assert _mentions() == [("alice", second.pk), ("bob", first.pk), ("bob", third.pk)]


@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_twice_makes_one_mention(mentions_worker, alice, bob, lobby):
    message = actions.post_message(author=alice, room=lobby, body="@bob once").message
    _process(mentions_worker)
    assert _mentions() == [("bob", message.pk)]

    # A re-send of the same outbox row: the stream now holds the event twice.
    row = OutboxEvent.objects.get(topic=events.TOPIC_MESSAGE)
    get_redis().delete(relay.published_key("chat.message"))
    assert relay.publish_rows([row]) == 1
    assert lag(SUB) == 1

    _process(mentions_worker)

    assert _mentions() == [("bob", message.pk)]
    assert ProcessedEvent.objects.filter(subscriber=SUB, event_id=row.event_id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_events_before_the_group_existed_are_not_seen(alice, bob, lobby):
    """start: "now" -- a message posted before the subscriber existed notifies nobody."""
    actions.post_message(author=alice, room=lobby, body="@bob before")
    with worker(SUB) as w:
        later = actions.post_message(author=alice, room=lobby, body="@bob after").message
        _process(w)

    assert _mentions() == [("bob", later.pk)]


# --- private rooms -------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_no_mention_for_someone_who_cannot_read_the_private_room(
    mentions_worker, alice, bob, mallory, secret_room
):
    """A mention would tell mallory a private room exists and link her to a message she may not
    read; only members of a private room are notified."""
    message = actions.post_message(
        author=alice, room=secret_room, body="@mallory must not know, @bob may"
    ).message

    _process(mentions_worker)

    assert _mentions() == [("bob", message.pk)]
    assert ProcessedEvent.objects.filter(subscriber=SUB).count() == 1


@pytest.mark.django_db(transaction=True)
def test_public_rooms_notify_non_members(mentions_worker, alice, mallory, lobby):
    """Anyone signed in may read a public room, so membership does not matter there."""
    message = actions.post_message(author=alice, room=lobby, body="@mallory welcome").message

    _process(mentions_worker)

    assert _mentions() == [("mallory", message.pk)]


# --- deleted messages ----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_message_deleted_before_its_event_is_processed_notifies_nobody(
    mentions_worker, alice, bob, lobby
):
    """Moderation (deleting a message in the admin) must not turn its event into a poison event
    that is retried and dead-lettered, nor break the events processed with it."""
    gone = actions.post_message(author=alice, room=lobby, body="@bob spam").message
    kept = actions.post_message(author=alice, room=lobby, body="@bob real").message
    gone_event = OutboxEvent.objects.get(type=events.MESSAGE_CREATED, seq=gone.seq).event_id
    actions.delete_message(user=alice, message=gone)

    _process(mentions_worker)

    assert _mentions() == [("bob", kept.pk)]
    assert not DeadLetter.objects.filter(subscriber=SUB).exists()
    assert ProcessedEvent.objects.filter(subscriber=SUB, event_id=gone_event).exists()
