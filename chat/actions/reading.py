"""Read positions: how far a member read a room, and which mentions they have seen."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from chat.errors import ActionError
from chat.models import Membership, Mention, Room


def mark_read(*, user: AbstractBaseUser, room: Room, seq: int) -> Membership:
    """Move the user's read position up to ``seq`` (clamped to the newest; never backwards)."""
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(user=user, room=room).first()
        if membership is None:
            raise ActionError("not_a_member", "join the room first")
        position = min(seq, Room.objects.values_list("last_seq", flat=True).get(pk=room.pk))
        if position > membership.last_read_seq:
            membership.last_read_seq = position
            membership.save(update_fields=["last_read_seq"])
    return membership


def mark_mention_read(*, user: AbstractBaseUser, mention_id: int) -> Mention | None:
    """Mark one of ``user``'s mentions read (idempotent); None if they have no such mention."""
    mention = Mention.objects.filter(user=user, pk=mention_id).first()
    if mention is not None and mention.read_at is None:
        mention.read_at = timezone.now()
        mention.save(update_fields=["read_at"])
    return mention
