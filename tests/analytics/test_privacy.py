"""Analytics keeps no message bodies: not from new events (through the real broker worker),
and not from records stored before (migration 0002 strips them)."""

from __future__ import annotations

import importlib
import uuid
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from analytics.models import BehaviourRecord
from chat import actions
from tests.support.inproc_worker import drain

db = pytest.mark.django_db(transaction=True)
migration = importlib.import_module("analytics.migrations.0002_forget_users_drop_bodies")


@db
def test_behaviour_records_keep_no_message_bodies(lobby, alice):
    message = actions.post_message(author=alice, room=lobby, body="private words").message
    actions.edit_message(user=alice, message=message, body="other private words")
    drain("analytics")

    records = BehaviourRecord.objects.filter(type__startswith="message.")
    assert records.count() == 2
    for record in records:
        assert "body" not in record.payload["message"]
        assert record.payload["message"]["author"] == "alice"
        assert "private words" not in str(record.payload)


@db
def test_the_migration_strips_bodies_stored_before():
    def record(type: str, payload: dict) -> BehaviourRecord:
        now = timezone.now()
        return BehaviourRecord.objects.create(
            event_id=uuid.uuid4(), topic="t", type=type, room="lobby", user="alice",
            occurred_at=now, processed_at=now, latency_ms=1.0, payload=payload,
        )  # fmt: skip

    old = record("message.created", {"version": 1, "message": {"author": "a", "body": "secret"}})
    joined = record("room.joined", {"version": 1, "user": "alice", "role": "member"})

    migration.drop_bodies(apps, SimpleNamespace(connection=connection))

    old.refresh_from_db()
    joined.refresh_from_db()
    assert old.payload == {"version": 1, "message": {"author": "a"}}
    assert joined.payload == {"version": 1, "user": "alice", "role": "member"}
