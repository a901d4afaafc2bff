"""Room events: the changes of a room that are not messages — a member joined, a membership
ended (left, removed, the account deleted), the room was renamed or made private or public —
recorded with the change, pushed live to the room's sockets and replayed on resume.

Each one takes the room's next change number (``Room.allocate``, inside the transaction that
makes the change: the room's row lock is held until commit, so room events and message changes
commit in change order), is kept as a ``RoomEvent`` row for replays, and is recorded in the
outbox as a ``chat.room`` event (room.joined, room.left, room.updated) whose client frame
(``chat.events.client_frame``) the relay publishes to the room's group like a message event.
Sockets therefore treat them exactly as they treat edits (chat.delivery): dropped at or below
the socket's change, a gap beyond it caught up from the database, where
``selectors.replay_changes_after`` merges them with the edits and deletes of older messages in
change order.

Where they are recorded (one place each):
- joins: the actions that make memberships (join, invite, create a room, open a DM) call
  ``member_joined``; a membership made with the ORM or the admin's inline records nothing.
- ends: the membership's ``post_delete`` (chat.access), whatever deleted it — the actions set
  the reason with ``end_membership``, the admin and a shell's ``delete()`` count as "removed".
- room changes: the room's ``pre_save``/``post_save`` (chat.access), whatever saved it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from chat import outbox
from chat.models import Membership, Room, RoomEvent
from contract import events

LEFT, REMOVED, ACCOUNT_DELETED = events.LEFT_REASONS


def member_joined(membership: Membership) -> None:
    """Record room.joined for ``membership``, inside the transaction that made it."""
    _record(
        membership.room_id,
        lambda change, now: events.room_event(
            events.ROOM_JOINED,
            room=membership.room.slug,
            user=membership.user.get_username(),
            role=membership.role,
            ts=now,
            change=change,
        ),
    )


def end_membership(
    membership: Membership, *, reason: str, shown_as: AbstractBaseUser | None = None
) -> None:
    """Delete ``membership``; its ``post_delete`` records room.left with ``reason`` (one of
    events.LEFT_REASONS) naming ``shown_as`` when given (a deleted account's placeholder: the
    old username is never published), else the member."""
    membership._left_reason = reason
    membership._left_shown_as = shown_as.get_username() if shown_as is not None else None
    membership.delete()


def membership_deleted(membership: Membership) -> None:
    """Record room.left for a membership just deleted (its ``post_delete``): with the reason
    ``end_membership`` set, else "removed" (the admin, a shell)."""
    name = getattr(membership, "_left_shown_as", None) or membership.user.get_username()
    _record(
        membership.room_id,
        lambda change, now: events.room_event(
            events.ROOM_LEFT,
            room=membership.room.slug,
            user=name,
            role=membership.role,
            ts=now,
            change=change,
            reason=getattr(membership, "_left_reason", REMOVED),
        ),
    )


def room_updated(room: Room) -> None:
    """Record room.updated for ``room`` as it was just saved (its ``post_save``)."""
    room.last_change = _record(
        room.pk,
        lambda change, now: events.room_event(
            events.ROOM_UPDATED,
            room=room.slug,
            ts=now,
            change=change,
            title=room.title,
            is_private=room.is_private,
        ),
    )


def _record(room_id: int, build: Callable[[int, datetime], events.Event]) -> int:
    """Take the room's next change number, keep the event ``build`` makes with it for replays
    and record it in the outbox; returns the change number."""
    with transaction.atomic():
        _, change = Room.allocate(room_id, new_message=False)
        now = timezone.now()
        event = build(change, now)
        frame_type, fields = events.room_frame_fields(event)
        RoomEvent.objects.create(
            room_id=room_id, change=change, type=frame_type, data=fields, created_at=now
        )
        outbox.record(event, room_id=room_id)
    return change


def forget_member(*, username: str, shown_as: str) -> int:
    """A deleted account's name leaves the kept room events (replays name ``shown_as``, as its
    messages do). Runs inside the deletion's transaction; returns the rows rewritten."""
    rows = list(RoomEvent.objects.filter(data__member__user=username))
    for row in rows:
        row.data = {**row.data, "member": {**row.data["member"], "user": shown_as}}
    RoomEvent.objects.bulk_update(rows, ["data"])
    return len(rows)
