"""The relay's recovery sweep and outbox retention (in-process, real Redis and database)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from chat import relay, repair
from chat.models import Message, OutboxEvent


def _leave_pending(room, author, bodies):
    """Save messages whose after-commit publish 'failed': their outbox rows stay pending."""
    for body in bodies:
        Message.objects.create(room=room, author=author, body=body)
    OutboxEvent.objects.update(published_at=None)
    relay.get_redis().delete(relay.published_key("chat.message"), "chat.message")


@pytest.mark.django_db(transaction=True)
def test_relay_once_publishes_pending_rows_in_seq_order(lobby, alice, stream_events):
    _leave_pending(lobby, alice, ["a", "b", "c"])
    assert OutboxEvent.objects.filter(topic="chat.message", published_at=None).count() == 3

    call_command("relay", "--once")

    assert [e["seq"] for e in stream_events()] == [1, 2, 3]
    assert relay.pending_count() == 0


@pytest.mark.django_db(transaction=True)
def test_republishing_is_deduplicated_by_the_seq_guard(lobby, alice, stream_events):
    Message.objects.create(room=lobby, author=alice, body="once")
    rows = list(OutboxEvent.objects.filter(topic="chat.message"))
    assert relay.publish_rows(rows) == 0  # already on Redis: dropped by the guard
    assert len(stream_events()) == 1


@pytest.mark.django_db(transaction=True)
def test_prune_keeps_pending_and_recent_rows(lobby, alice):
    for body in ("old", "recent", "pending"):
        Message.objects.create(room=lobby, author=alice, body=body)
    OutboxEvent.objects.exclude(topic="chat.message").delete()
    old, recent, pending = OutboxEvent.objects.order_by("id")
    OutboxEvent.objects.filter(pk=old.pk).update(published_at=timezone.now() - timedelta(days=2))
    OutboxEvent.objects.filter(pk=pending.pk).update(published_at=None)

    assert repair.prune(older_than=timedelta(hours=24), cap=timedelta(days=7)) == 1
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}
