"""Rooms and memberships: create a room, open a direct conversation, join, leave, invite and
remove members. Each membership made or ended records room.joined / room.left in the outbox."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from chat import room_events, selectors
from chat.errors import ActionError
from chat.models import Membership, Room

# Slugs of direct-message rooms (see open_direct_room); create_room refuses them.
DIRECT_PREFIX = "dm-"


def create_room(
    *, creator: AbstractBaseUser, slug: str, title: str, is_private: bool = False
) -> Room:
    """Create a room owned by ``creator`` (who joins it: room.joined). Slugs are unique
    whatever their case ("Lobby" is taken once "lobby" exists), and the direct-message prefix
    is reserved in any case ("DM-1-2" too)."""
    if is_reserved_slug(slug):
        raise ActionError("reserved_slug", f"slugs starting {DIRECT_PREFIX!r} are direct messages")
    return _create_room(creator=creator, slug=slug, title=title, is_private=is_private)


def is_reserved_slug(slug: str) -> bool:
    return slug.lower().startswith(DIRECT_PREFIX)


def _create_room(*, creator: AbstractBaseUser, slug: str, title: str, is_private: bool) -> Room:
    taken = ActionError("already_exists", f"a room {slug!r} exists already")
    if Room.objects.filter(slug__iexact=slug).exists():
        raise taken
    try:
        with transaction.atomic():
            room = Room.objects.create(slug=slug, title=title, is_private=is_private)
            owner = Membership.objects.create(user=creator, room=room, role=Membership.Role.OWNER)
            room_events.member_joined(owner)
    except IntegrityError:  # created concurrently (room_slug_unique_ci)
        raise taken from None
    return room


def direct_room_slug(user: AbstractBaseUser, other: AbstractBaseUser) -> str:
    low, high = sorted((user.pk, other.pk))
    return f"{DIRECT_PREFIX}{low}-{high}"


def open_direct_room(*, user: AbstractBaseUser, other: AbstractBaseUser) -> Room:
    """The private room of exactly ``user`` and ``other``, created on first use (idempotent).

    Its slug is ``dm-<lower id>-<higher id>`` (reserved: create_room refuses the prefix) and its
    title "<lower> & <higher>". Both are members afterwards — one who left is back — and each
    membership made publishes room.joined, as create_room and invite do.
    """
    if not user.is_authenticated:
        raise ActionError("not_authenticated", "authentication required")
    if other.pk == user.pk:
        raise ActionError("direct_to_self", "a direct conversation needs another user")
    slug = direct_room_slug(user, other)
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        low, high = sorted((user, other), key=lambda u: u.pk)
        title = f"{low.get_username()} & {high.get_username()}"
        try:
            with transaction.atomic():
                room = _create_room(creator=user, slug=slug, title=title, is_private=True)
        except (ActionError, IntegrityError):  # opened concurrently by the other one
            room = Room.objects.get(slug=slug)
    strangers = Membership.objects.filter(room=room).exclude(user__in=(user, other))
    if not room.is_private or strangers.exists():  # made before the prefix was reserved
        raise ActionError("direct_room_conflict", f"room {slug!r} is not a direct conversation")
    with transaction.atomic():
        for person in (user, other):
            _add_member(person, room)
    return room


def open_direct_room_with(*, user: AbstractBaseUser, username: str) -> Room:
    """``open_direct_room`` with a user named as people type it; ActionError ``no_such_user``
    for a name of no active user (the page must say so: anyone signed in may message anyone)."""
    other = _active_user(username)
    if other is None:
        raise ActionError("no_such_user", f"there is no user {username.strip()!r}")
    return open_direct_room(user=user, other=other)


def join_room(*, user: AbstractBaseUser, room: Room) -> Membership:
    """Make ``user`` a member of a public room (idempotent; publishes room.joined once)."""
    if room.is_private and not selectors.is_member(user=user, room=room):
        raise ActionError("forbidden", "private rooms are joined by invitation")
    return _add_member(user, room)


def leave_room(*, user: AbstractBaseUser, room: Room) -> bool:
    """End ``user``'s membership of ``room``; False if there was none. Publishes room.left."""
    with transaction.atomic():
        membership = Membership.objects.filter(user=user, room=room).first()
        if membership is None:
            return False
        room_events.end_membership(membership, reason=room_events.LEFT)
    return True


def remove_member(*, remover: AbstractBaseUser, room: Room, username: str) -> None:
    """End someone else's membership (publishes room.left; their open sockets lose a private
    room at once, through access.revoked). The room's owner removes anyone, moderators and
    staff remove plain members; nobody removes the owner, and a direct room keeps its two."""
    if room.slug.startswith(DIRECT_PREFIX):
        raise ActionError("direct_room", "a direct conversation has exactly two members")
    role = selectors.role_in(user=remover, room=room)
    if role not in (Membership.Role.OWNER, Membership.Role.MODERATOR) and not remover.is_staff:
        raise ActionError("forbidden", "only the room's owner, moderators and staff remove members")
    with transaction.atomic():
        target = (
            Membership.objects.select_for_update()
            .select_related("user", "room")
            .filter(room=room, user__username=username.strip())
            .first()
        )
        if target is None or target.user_id == remover.pk:
            raise ActionError("not_a_member", f"{username!r} is not another member of this room")
        if target.role != Membership.Role.MEMBER and role != Membership.Role.OWNER:
            raise ActionError("forbidden", "only the owner removes a moderator or the owner")
        if target.role == Membership.Role.OWNER:
            raise ActionError("forbidden", "the owner cannot be removed")
        room_events.end_membership(target, reason=room_events.REMOVED)


def check_can_invite(*, inviter: AbstractBaseUser, room: Room) -> None:
    if not room.is_private:
        raise ActionError("public_room", "anyone can join a public room; no invitation needed")
    if room.slug.startswith(DIRECT_PREFIX):
        raise ActionError("direct_room", "a direct conversation has exactly two members")
    role = selectors.role_in(user=inviter, room=room)
    if role not in (Membership.Role.OWNER, Membership.Role.MODERATOR):
        raise ActionError("forbidden", "only the room's owner and moderators invite")


def invite(*, inviter: AbstractBaseUser, room: Room, invitee: AbstractBaseUser) -> Membership:
    """Add ``invitee`` to a private room; only its owner or moderators invite (idempotent)."""
    check_can_invite(inviter=inviter, room=room)
    return _add_member(invitee, room)


def invite_username(*, inviter: AbstractBaseUser, room: Room, username: str) -> Membership:
    """``invite`` by username, as people type it (the page and REST). Whether the name exists
    (ActionError ``no_such_user``) is told only to those allowed to invite: anyone else is
    refused first, and learns nothing about the name."""
    check_can_invite(inviter=inviter, room=room)
    invitee = _active_user(username)
    if invitee is None:
        raise ActionError("no_such_user", f"there is no user {username!r}")
    return _add_member(invitee, room)


def _active_user(username: str) -> AbstractBaseUser | None:
    """The active user named ``username``: a deactivated account is as good as none."""
    return get_user_model().objects.filter(username=username.strip(), is_active=True).first()


def _add_member(user: AbstractBaseUser, room: Room) -> Membership:
    """Make ``user`` a member (idempotent); a new membership publishes room.joined."""
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(user=user, room=room)
        if created:
            room_events.member_joined(membership)
    return membership
