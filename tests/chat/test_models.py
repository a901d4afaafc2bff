"""Message.save() is the safety net: every insert gets a gapless seq and publishes once."""

from __future__ import annotations

import pytest
from django.db import transaction

from chat.models import Message, OutboxEvent, Room


@pytest.mark.django_db(transaction=True)
def test_orm_create_numbers_and_publishes(lobby, alice, bob, stream_events):
    first = Message.objects.create(room=lobby, author=alice, body="one")
    second = Message.objects.create(room=lobby, author=bob, body="two")

    assert (first.seq, second.seq) == (1, 2)
    assert Room.objects.get(pk=lobby.pk).last_seq == 2
    published = stream_events()
    assert [(e["type"], e["seq"], e["payload"]["message"]["body"]) for e in published] == [
        ("message.created", 1, "one"),
        ("message.created", 2, "two"),
    ]
    assert published[0]["room"] == "lobby"
    assert published[0]["payload"]["message"]["author"] == "alice"
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_rolled_back_message_leaves_no_seq_gap_and_no_event(lobby, alice, stream_events):
    with pytest.raises(RuntimeError), transaction.atomic():
        Message.objects.create(room=lobby, author=alice, body="never")
        raise RuntimeError("abort")

    kept = Message.objects.create(room=lobby, author=alice, body="kept")

    assert kept.seq == 1
    assert [e["seq"] for e in stream_events()] == [1]
    assert OutboxEvent.objects.filter(topic="chat.message").count() == 1


@pytest.mark.django_db(transaction=True)
def test_event_is_published_only_after_commit(lobby, alice, stream_events):
    with transaction.atomic():
        Message.objects.create(room=lobby, author=alice, body="inside")
        assert stream_events() == []
        assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 1
    assert [e["seq"] for e in stream_events()] == [1]


@pytest.mark.django_db(transaction=True)
def test_rooms_number_independently(lobby, secret_room, alice):
    a = Message.objects.create(room=lobby, author=alice, body="a")
    b = Message.objects.create(room=secret_room, author=alice, body="b")
    assert (a.seq, b.seq) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_saving_an_existing_message_publishes_nothing_new(lobby, alice, stream_events):
    message = Message.objects.create(room=lobby, author=alice, body="typo")
    message.body = "fixed"
    message.save()
    assert len(stream_events()) == 1
    assert Message.objects.get(pk=message.pk).seq == 1


@pytest.mark.django_db(transaction=True)
def test_a_new_message_cannot_choose_its_seq(lobby, alice):
    with pytest.raises(ValueError, match="assigned by its room"):
        Message.objects.create(room=lobby, author=alice, body="x", seq=7)
    assert Message.objects.count() == 0
