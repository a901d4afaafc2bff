"""Reads: the queries that the WebSocket replay, the pages and (later) REST share."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from chat import events
from chat.models import Membership, Message, Room


class RoomAccessError(Exception):
    """The user may not open this room; ``code`` is the WebSocket close code to use."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def room_for_user(*, user: AbstractBaseUser | AnonymousUser, slug: str) -> Room:
    """The room ``slug`` if ``user`` may read it; raises RoomAccessError otherwise.

    Anonymous -> 4401, unknown room -> 4404, private room the user is not a member of -> 4403.
    """
    if not user.is_authenticated:
        raise RoomAccessError(4401, "authentication required")
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        raise RoomAccessError(4404, f"no room {slug!r}")
    if room.is_private and not is_member(user=user, room=room):
        raise RoomAccessError(4403, "this room is private")
    return room


def is_member(*, user: AbstractBaseUser, room: Room) -> bool:
    return Membership.objects.filter(user=user, room=room).exists()


def room_seq(*, room_id: int) -> int:
    """The room's newest committed seq."""
    return Room.objects.filter(pk=room_id).values_list("last_seq", flat=True).get()


def messages_after(*, room_id: int, after_seq: int, limit: int) -> list[events.MessageData]:
    """Up to ``limit`` messages with seq > after_seq, oldest first."""
    rows = (
        Message.objects.filter(room_id=room_id, seq__gt=after_seq)
        .select_related("room", "author")
        .order_by("seq")[:limit]
    )
    return [events.message_data(m) for m in rows]


def rooms_for_user(*, user: AbstractBaseUser) -> list[Room]:
    """Public rooms and the private rooms the user belongs to."""
    public = Room.objects.filter(is_private=False)
    private = Room.objects.filter(is_private=True, memberships__user=user)
    return list(public.union(private).order_by("slug"))
