"""``manage.py replay NAME --from ID``: apply a subscriber to retained events it never processed,
skipping what its ledger already holds (``--reprocess`` applies those again)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analytics.models import BehaviourRecord, RoomMinute
from broker import streams
from broker.models import ProcessedEvent, SubscriberState
from chat import actions
from chat.models import Mention, OutboxEvent
from contract import events
from infra.redis_client import get_redis
from tests.support import subscribers
from tests.support.inproc_worker import drain


def _replay(*args: str) -> str:
    out = io.StringIO()
    call_command("replay", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def _post(author, room, n: int, prefix: str = "m") -> None:
    for i in range(n):
        actions.post_message(author=author, room=room, body=f"{prefix} {i}")


def _message_ids() -> list[str]:
    return [
        str(e)
        for e in OutboxEvent.objects.filter(topic=events.TOPIC_MESSAGE)
        .order_by("id")
        .values_list("event_id", flat=True)
    ]


def _ledger(name: str) -> list[tuple[str, str]]:
    return sorted(
        (str(e), w)
        for e, w in ProcessedEvent.objects.filter(subscriber=name).values_list("event_id", "worker")
    )


@pytest.fixture
def handled(monkeypatch) -> list[str]:
    """The event ids the recorder's handler was given, in order."""
    seen: list[str] = []
    real = subscribers.record

    def record(batch):
        seen.extend(e["id"] for e in batch)
        real(batch)

    monkeypatch.setattr(subscribers, "record", record)
    return seen


@pytest.mark.django_db(transaction=True)
def test_replay_applies_what_was_never_processed_and_skips_the_ledger(alice, lobby, handled):
    _post(alice, lobby, 3, "seen")
    drain("recorder")
    processed = _message_ids()
    assert len(_ledger("recorder")) == 3
    handled.clear()

    # The group is lost (a Redis that keeps nothing on disk), then more is posted.
    get_redis().xgroup_destroy(events.TOPIC_MESSAGE, "recorder")
    _post(alice, lobby, 2, "missed")
    missed = _message_ids()[3:]

    assert _replay("recorder", "--from", "-") == "applied 2 events"

    assert handled == missed  # only the two, oldest first
    ledger = _ledger("recorder")
    assert len(ledger) == 5  # no duplicate rows
    assert {e for e, _ in ledger} == set(processed) | set(missed)
    assert {e for e, w in ledger if w == "replay"} == set(missed)
    assert SubscriberState.objects.get(subscriber="recorder").processed == 5

    # Again: everything is in the ledger now.
    handled.clear()
    assert _replay("recorder") == "applied 0 events"
    assert handled == []
    assert len(_ledger("recorder")) == 5


@pytest.mark.django_db(transaction=True)
def test_reprocess_applies_processed_events_again(alice, lobby, handled):
    _post(alice, lobby, 3)
    drain("recorder")
    handled.clear()

    assert _replay("recorder", "--from", "-", "--reprocess") == "applied 3 events"

    assert handled == _message_ids()
    ledger = _ledger("recorder")
    assert len(ledger) == 3  # forgotten, then recorded again: still one row per event
    assert {w for _, w in ledger} == {"replay"}
    assert SubscriberState.objects.get(subscriber="recorder").processed == 6


@pytest.mark.django_db(transaction=True)
def test_replay_from_a_stream_position(alice, lobby, handled):
    _post(alice, lobby, 4)
    ids = [streams.decode(sid) for sid, _ in get_redis().xrange(events.TOPIC_MESSAGE)]

    assert _replay("recorder", "--from", ids[2]) == "applied 2 events"

    assert handled == _message_ids()[2:]
    assert len(_ledger("recorder")) == 2
    # The rest, from the oldest: the two already applied are skipped.
    assert _replay("recorder") == "applied 2 events"
    assert handled == _message_ids()[2:] + _message_ids()[:2]
    assert len(_ledger("recorder")) == 4


@pytest.mark.django_db(transaction=True)
def test_a_start_now_subscriber_catches_up_on_the_past(alice, bob, lobby):
    """mentions starts at "now": what was posted before it existed needs a replay."""
    message = actions.post_message(author=alice, room=lobby, body="@bob earlier").message
    drain("mentions")  # creates the group at "now": the old message is not delivered
    assert not Mention.objects.exists()

    assert _replay("mentions") == "applied 1 events"
    assert list(Mention.objects.values_list("user__username", "message_id")) == [
        ("bob", message.pk)
    ]
    assert _replay("mentions") == "applied 0 events"
    assert Mention.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_replay_of_a_multi_topic_subscriber_is_exactly_once(alice, bob, lobby):
    _post(alice, lobby, 2)
    actions.leave_room(user=bob, room=lobby)
    drain("analytics")
    records = BehaviourRecord.objects.count()
    rooms = sorted(RoomMinute.objects.values_list("room", "minute", "messages", "joins", "leaves"))
    assert records == 5

    assert _replay("analytics") == "applied 0 events"

    assert BehaviourRecord.objects.count() == records
    assert (
        sorted(RoomMinute.objects.values_list("room", "minute", "messages", "joins", "leaves"))
        == rooms
    )


@pytest.mark.django_db(transaction=True)
def test_unknown_subscriber_is_a_command_error():
    with pytest.raises(CommandError, match="no subscriber 'nope'"):
        _replay("nope")
