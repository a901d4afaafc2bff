"""Reads: the queries that the WebSocket replay, the pages and (later) REST share."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import OuterRef, Q, QuerySet, Subquery

from chat.models import Membership, Message, Room
from contract import events
from database import sql
from database.joined import unique_row


class RoomAccessError(Exception):
    """The user may not open this room; ``code`` is the WebSocket close code to use."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def room_for_user(*, user: AbstractBaseUser | AnonymousUser, slug: str) -> Room:
    """The room ``slug`` if ``user`` may read it; raises RoomAccessError otherwise.

    Anonymous -> 4401; an unknown room and a private room the user is not a member of -> 4404
    with the same detail, so nobody learns which private rooms exist by asking (REST answers
    both 404, pages 404, a socket closes 4404).
    """
    if not user.is_authenticated:
        raise RoomAccessError(4401, "authentication required")
    room = unique_row(Room, "slug", slug)
    if room is None or (room.is_private and not is_member(user=user, room=room)):
        raise RoomAccessError(4404, f"no room {slug!r}")
    return room


def is_member(*, user: AbstractBaseUser, room: Room, active: bool = False) -> bool:
    """Whether ``user`` belongs to ``room`` (``active``: and their account is active)."""
    members = Membership.objects.filter(user=user, room=room)
    if active:
        members = members.filter(user__is_active=True)
    return members.exists()


def is_active(*, user: AbstractBaseUser) -> bool:
    return get_user_model().objects.filter(pk=user.pk, is_active=True).exists()


def member_room_ids(*, user: AbstractBaseUser) -> list[int]:
    return list(Membership.objects.filter(user=user).values_list("room_id", flat=True))


def role_in(*, user: AbstractBaseUser, room: Room) -> str | None:
    """The user's role in the room, or None for a non-member."""
    return Membership.objects.filter(user=user, room=room).values_list("role", flat=True).first()


def room_position(*, room_id: int) -> tuple[int, int]:
    """The room's newest committed (seq, change number); Room.DoesNotExist if there is none.

    Every connect and every catch-up reads it: a statement written once (database.sql), as on
    the post path (the ORM spent ~0.3 ms of CPU building this one-row read; ``python -m bench
    connect-profile``)."""
    position = sql.room_position(room_id)
    if position is None:
        raise Room.DoesNotExist(f"no room with id {room_id}")
    return position


def messages_after(
    *, room_id: int, after_seq: int, limit: int, up_to_seq: int | None = None
) -> list[tuple[events.MessageData, int]]:
    """Up to ``limit`` messages with seq > after_seq (and <= up_to_seq, when given) as they now
    are, oldest first, each with the change number of its latest change."""
    rows = Message.objects.filter(room_id=room_id, seq__gt=after_seq)
    if up_to_seq is not None:
        rows = rows.filter(seq__lte=up_to_seq)
    return _replayed(rows.order_by("seq")[:limit])


def changes_after(
    *, room_id: int, up_to_seq: int, after_change: int, limit: int
) -> list[tuple[events.MessageData, int]]:
    """Messages with seq <= up_to_seq edited or deleted after change ``after_change``, in
    change order (each once, as it now is).

    Every connect asks, and the answer is nearly always none (a client that is current, or
    resumes after a few new messages): a probe written once (database.sql) answers that, and
    the ORM builds the page's query (~1 ms of CPU with its joins) only when there is something
    to read."""
    if not sql.any_change_after(room_id, up_to_seq, after_change):
        return []
    rows = Message.objects.filter(room_id=room_id, seq__lte=up_to_seq, change__gt=after_change)
    return _replayed(rows.order_by("change")[:limit])


def replay_changes_after(
    *, room_id: int, up_to_seq: int, after_change: int, limit: int
) -> list[tuple[events.MessageData | events.RoomEventData, int]]:
    """The edit replay's page: ``changes_after`` and the room's events after ``after_change``
    (chat.room_events), merged in change order (one sequence: no ties), the first ``limit``.
    Shorter than ``limit``: nothing more of either; else the next page starts after the last
    row's change."""
    rows: list[tuple[events.MessageData | events.RoomEventData, int]] = list(
        changes_after(room_id=room_id, up_to_seq=up_to_seq, after_change=after_change, limit=limit)
    )
    for change, frame, fields in sql.room_events_after(room_id, after_change, limit):
        rows.append(({"frame": frame, "fields": fields}, change))
    rows.sort(key=lambda row: row[1])
    return rows[:limit]


def _replayed(rows: QuerySet[Message]) -> list[tuple[events.MessageData, int]]:
    """Each row as ``events.message_data`` shapes it, with its change number, read as plain
    values: building a Message, its Room and its User per row was ~60% of a reconnect's
    replay (``python -m bench connect-profile --mode wave``)."""
    username = f"author__{get_user_model().USERNAME_FIELD}"
    fields = ("id", "room__slug", "seq", username, "body", "created_at", "edited_at")
    return [
        (events.message_data(_Stored(*values)), change)
        for *values, change in rows.values_list(*fields, "deleted_at", "change")
    ]


class _Stored:
    """A message as ``events.message_data`` reads it, from a row of values."""

    __slots__ = ("id", "room", "seq", "author", "body", "created_at", "edited_at", "deleted_at")

    def __init__(self, id, room_slug, seq, username, body, created_at, edited_at, deleted_at):
        self.id, self.seq, self.body = id, seq, body
        self.room, self.author = _Named(room_slug), _Named(username)
        self.created_at, self.edited_at, self.deleted_at = created_at, edited_at, deleted_at


class _Named:
    """The name of a message's room (``slug``) or author (``get_username()``), for ``_Stored``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def slug(self) -> str:
        return self.name

    def get_username(self) -> str:
        return self.name


def rooms_for_user(*, user: AbstractBaseUser) -> QuerySet[Room]:
    """Public rooms and the private rooms the user belongs to, each annotated with the user's
    ``role`` and ``last_read_seq`` (None where not a member), ordered by slug."""
    mine = Membership.objects.filter(user=user, room=OuterRef("pk"))
    return (
        Room.objects.filter(Q(is_private=False) | Q(memberships__user=user))
        .distinct()
        .annotate(
            role=Subquery(mine.values("role")[:1]),
            last_read_seq=Subquery(mine.values("last_read_seq")[:1]),
        )
        .order_by("slug")
    )


def memberships_of(*, user: AbstractBaseUser) -> QuerySet[Membership]:
    """The user's memberships with their rooms, by room slug."""
    return Membership.objects.filter(user=user).select_related("room").order_by("room__slug")


def unread(room: Room) -> int | None:
    """Unread messages of an annotated room (``rooms_for_user``); None for non-members."""
    if room.last_read_seq is None:
        return None
    return max(0, room.last_seq - room.last_read_seq)


def members(*, room: Room) -> QuerySet[Membership]:
    return Membership.objects.filter(room=room).select_related("user").order_by("joined_at", "id")


def message_page(
    *, room_id: int, after_seq: int | None, before_seq: int | None, limit: int
) -> list[Message]:
    """A page of messages, oldest first: after ``after_seq``, else before ``before_seq``, else
    the newest ``limit``."""
    rows = Message.objects.filter(room_id=room_id).select_related("room", "author")
    if after_seq is not None:
        return list(rows.filter(seq__gt=after_seq).order_by("seq")[:limit])
    if before_seq is not None:
        rows = rows.filter(seq__lt=before_seq)
    return list(reversed(rows.order_by("-seq")[:limit]))


def sidebar_rooms(*, user: AbstractBaseUser) -> list[Room]:
    """The rooms ``user`` is a member of, most recent activity first, each annotated with
    ``last_read_seq`` and its newest message's ``last_at``, ``last_body``, ``last_author`` and
    ``last_deleted`` (None where the room has no message yet). One query."""
    newest = Message.objects.filter(room=OuterRef("pk"), seq=OuterRef("last_seq"))
    rooms = (
        Room.objects.filter(memberships__user=user)
        .annotate(
            last_read_seq=Subquery(
                Membership.objects.filter(user=user, room=OuterRef("pk")).values("last_read_seq")[
                    :1
                ]
            ),
            last_at=Subquery(newest.values("created_at")[:1]),
            last_body=Subquery(newest.values("body")[:1]),
            last_author=Subquery(newest.values("author__username")[:1]),
            last_deleted=Subquery(newest.values("deleted_at")[:1]),
        )
        .order_by("slug")
    )
    return sorted(rooms, key=lambda r: r.last_at or r.created_at, reverse=True)
