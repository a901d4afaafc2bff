"""Chat's part of deleting a user for good (called by accounts.actions.delete_user, inside its
one transaction): their rooms get an heir, their messages are tombstoned or re-attributed, their
memberships end. Everything is published like any other change, after that transaction commits.

Whatever is published here names the user as the placeholder account ``shown_as`` (the
"deleted user"), never by their old username.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, IntegerField, Q, Value, When
from django.utils import timezone

from chat import changes, room_events
from chat.actions import DIRECT_PREFIX
from chat.models import Membership, Message, OutboxEvent, Room
from contract import events

TOMBSTONE = "tombstone"
ANONYMIZE = "anonymize"
MODES = (TOMBSTONE, ANONYMIZE)
# Messages changed per statement: bounds the memory a user with a long history needs.
CHUNK = 500


def hand_over_rooms(*, user: AbstractBaseUser) -> list[tuple[Room, AbstractBaseUser | None]]:
    """Each room ``user`` owns passes to its longest-standing moderator, else its
    longest-standing member. A room nobody else belongs to keeps its history without an owner
    (staff moderate it). Returns (room, heir or None) for each room the user owned alone."""
    owned = Membership.objects.filter(user=user, role=Membership.Role.OWNER).select_related("room")
    seniority = Case(
        When(role=Membership.Role.MODERATOR, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    handed = []
    for membership in owned:
        others = Membership.objects.filter(room_id=membership.room_id).exclude(user=user)
        if others.filter(role=Membership.Role.OWNER).exists():
            continue
        heir = others.select_related("user").order_by(seniority, "joined_at", "pk").first()
        if heir is not None:
            heir.role = Membership.Role.OWNER
            heir.save(update_fields=["role"])
        handed.append((membership.room, heir.user if heir else None))
    return handed


def rename_direct_rooms(*, user: AbstractBaseUser, shown_as: AbstractBaseUser) -> int:
    """Direct conversations are titled "<lower> & <higher>" by username: the user's name in
    their titles becomes the placeholder's. Returns the rooms renamed."""
    name, renamed = user.get_username(), 0
    rooms = Room.objects.filter(slug__startswith=DIRECT_PREFIX, memberships__user=user)
    for room in rooms:
        names = [shown_as.get_username() if n == name else n for n in room.title.split(" & ")]
        if " & ".join(names) != room.title:
            room.title = " & ".join(names)
            room.save(update_fields=["title"])
            renamed += 1
    return renamed


def release_messages(*, user: AbstractBaseUser, shown_as: AbstractBaseUser, mode: str) -> int:
    """Attribute every message of ``user`` to ``shown_as``; with ``mode`` "tombstone" their
    bodies go too. Each message takes a change number and publishes its event through the
    edit/delete write path: message.deleted for a tombstone (new or old, so sockets see the new
    author on it too), message.edited (body unchanged, edited_at untouched) for a message kept
    under the placeholder. Their idempotency keys are dropped. Returns the messages changed."""
    if mode not in MODES:
        raise ValueError(f"PARLEY_DELETED_USER_MESSAGES must be one of {MODES}, not {mode!r}")
    now = timezone.now()

    def mutate(message: Message) -> str:
        message.author, message.client_id = shown_as, None
        if mode == TOMBSTONE and message.deleted_at is None:
            message.body, message.deleted_at = "", now
        return events.MESSAGE_DELETED if message.deleted_at else events.MESSAGE_EDITED

    count = 0
    for room in Room.objects.filter(messages__author=user).distinct().order_by("pk"):
        theirs = Message.objects.filter(room=room, author=user).order_by("seq")
        ids = list(theirs.values_list("pk", flat=True))
        for start in range(0, len(ids), CHUNK):
            count += len(changes.change_messages(room, ids[start : start + CHUNK], mutate, at=now))
    return count


def leave_all_rooms(*, user: AbstractBaseUser, shown_as: AbstractBaseUser) -> int:
    """End every membership of ``user``; each publishes room.left (naming ``shown_as``, reason
    "account_deleted") like any leave. Returns the memberships ended."""
    memberships = list(Membership.objects.filter(user=user).select_related("room"))
    for membership in memberships:
        room_events.end_membership(
            membership, reason=room_events.ACCOUNT_DELETED, shown_as=shown_as
        )
    return len(memberships)


def forget_published_events(*, username: str) -> int:
    """Delete the outbox's already published events that name ``username`` (kept only for
    inspection, see OUTBOX_RETENTION_HOURS): their bodies and name would outlive the account.
    Pending events are left to be published (they carry the change they describe). Returns the
    rows deleted."""
    theirs = Q(event__payload__message__author=username) | Q(event__payload__user=username)
    deleted, _ = OutboxEvent.objects.filter(theirs, published_at__isnull=False).delete()
    return deleted


def forget_room_events(*, username: str, shown_as: AbstractBaseUser) -> int:
    """The room events kept for replays name ``shown_as`` instead of ``username`` (as its
    messages do). Returns the events rewritten."""
    return room_events.forget_member(username=username, shown_as=shown_as.get_username())
