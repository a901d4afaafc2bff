"""Connection events: a socket opening or closing on a room (topic chat.presence)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from chat import events, outbox
from chat.models import Room


def record_connection(type: str, *, user: AbstractBaseUser, room: Room, session: str) -> None:
    """Publish user.connected or user.disconnected (through the outbox, like every event)."""
    event = events.connection(
        type, room=room.slug, user=user.get_username(), session=session, ts=timezone.now()
    )
    with transaction.atomic():
        outbox.record(event, room_id=room.pk)
