"""User-visible actions: one function each, called by the WebSocket consumer, views, the admin
and management commands alike.

Each action validates and authorises (``check_*``), then writes; events are emitted by the
models' outbox hook inside the same transaction and published after commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import changes, events, idempotency, outbox, ratelimit, selectors
from chat.errors import ActionError, rate_limited
from chat.models import Membership, Mention, Message, Room
from ops import metrics

# Slugs of direct-message rooms (see open_direct_room); create_room refuses them.
DIRECT_PREFIX = "dm-"


@dataclass(frozen=True)
class PostResult:
    message: Message
    created: bool


def check_body(body: object) -> str:
    if not isinstance(body, str) or not body.strip():
        raise ActionError("body_required", "body must be a non-empty string")
    if not _is_storable_text(body):
        raise ActionError("body_invalid", "body contains a NUL or an unpaired surrogate")
    limit = settings.PARLEY["MAX_BODY_CHARS"]
    if len(body) > limit:
        raise ActionError("body_too_long", f"body is longer than {limit} characters")
    return body


def _is_storable_text(value: str) -> bool:
    """False for text no database stores alike: a lone surrogate (JSON can escape one, "\\ud800")
    fails to encode, and PostgreSQL refuses NUL characters that SQLite would keep."""
    if "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_can_post(*, user: AbstractBaseUser, room: Room) -> None:
    """Authorise a post against the database, not the caller's copy of the user: a socket's
    user object is as old as the socket, and its user may have been deactivated since."""
    if not user.is_authenticated:
        raise ActionError("not_authenticated", "authentication required")
    if room.is_private:
        if not selectors.is_member(user=user, room=room, active=True):
            raise ActionError("forbidden", "you are not a member of this room")
    elif not selectors.is_active(user=user):
        raise ActionError("not_authenticated", "this account is not active")


@dataclass(frozen=True)
class PostRequest:
    author: AbstractBaseUser
    room: Room
    body: object
    client_id: uuid.UUID | None = None


def post_message(
    *, author: AbstractBaseUser, room: Room, body: object, client_id: uuid.UUID | None = None
) -> PostResult:
    """Post ``body`` to ``room`` as ``author``.

    A repeated ``client_id`` (the sender's retry) returns the message it already created,
    without counting against the rate limit. Raises ActionError for invalid or forbidden input.
    """
    try:
        result = _post_one(PostRequest(author, room, body, client_id))
    except ActionError as exc:
        metrics.count_posts([exc])
        raise
    metrics.count_posts([result])
    return result


def post_messages(requests: list[PostRequest]) -> list[PostResult | ActionError]:
    """``post_message`` for many requests at once (the WebSocket path batches what its sockets
    send meanwhile): each request is checked and answered exactly as ``post_message`` would,
    but each room's new messages are written in one transaction (``Message.create_batch``).
    Returns, in order, each request's result or the ActionError that refused it."""
    results: list[PostResult | ActionError | None] = [None] * len(requests)
    checked: dict[tuple[int, int], ActionError | None] = {}
    fresh: dict[int, list[tuple[int, Message]]] = {}  # room id -> (index, new message)
    firsts: dict[tuple[int, uuid.UUID], int] = {}  # a client_id's first request in the batch
    existing = idempotency.existing_client_ids(
        {(r.author.pk, r.client_id) for r in requests if r.client_id is not None}
    )
    for i, req in enumerate(requests):
        try:
            body = check_body(req.body)
            key = (req.author.pk, req.room.pk)
            if key not in checked:
                try:
                    check_can_post(user=req.author, room=req.room)
                    checked[key] = None
                except ActionError as exc:
                    checked[key] = exc
            if checked[key] is not None:
                raise checked[key]
            if req.client_id is not None:
                retried = existing.get((req.author.pk, req.client_id))
                if retried is not None:
                    idempotency.check_retry(retried, room=req.room, body=body)
                    results[i] = PostResult(retried, created=False)
                    continue
                first = firsts.setdefault((req.author.pk, req.client_id), i)
                if first != i:  # the same post twice in one batch: answered after the writes
                    continue
            message = _new_message(req, body)
            fresh.setdefault(req.room.pk, []).append((i, message))
        except ActionError as exc:
            results[i] = exc
    # The rate limit counts what passed the checks, in request order, in one round trip.
    counted = sorted(item for batch in fresh.values() for item in batch)
    allowed = ratelimit.allow_posts([message.author_id for _, message in counted])
    for (i, _), ok in zip(counted, allowed, strict=True):
        if not ok:
            results[i] = rate_limited(ratelimit.post_refusal_wait())
    fresh = {
        room_id: [(i, m) for i, m in batch if results[i] is None]
        for room_id, batch in fresh.items()
    }
    for batch in fresh.values():
        if not batch:
            continue
        try:
            Message.create_batch([message for _, message in batch])
        except IntegrityError:
            # A concurrent request with one of these client_ids won: answer one by one.
            for i, _ in batch:
                try:
                    results[i] = _post_one(requests[i], count=False)
                except ActionError as exc:
                    results[i] = exc
            continue
        for i, message in batch:
            results[i] = PostResult(message, created=True)
    for i, req in enumerate(requests):
        if results[i] is None:  # a repeat of an earlier request of this batch
            done = results[firsts[(req.author.pk, req.client_id)]]
            if isinstance(done, PostResult):
                try:
                    idempotency.check_retry(done.message, room=req.room, body=req.body)
                    done = PostResult(done.message, created=False)
                except ActionError as exc:
                    done = exc
            results[i] = done
    metrics.count_posts(results)
    return results  # type: ignore[return-value]


def _new_message(req: PostRequest, body: str) -> Message:
    digest = (
        None if req.client_id is None else idempotency.request_fingerprint(room=req.room, body=body)
    )
    return Message(
        room=req.room, author=req.author, body=body, client_id=req.client_id, request_digest=digest
    )


def _post_one(req: PostRequest, *, count: bool = True) -> PostResult:
    author, room, client_id = req.author, req.room, req.client_id
    body = check_body(req.body)
    check_can_post(user=author, room=room)
    if client_id is not None:
        existing = idempotency.by_client_id(
            author=author, client_id=client_id, room=room, body=body
        )
        if existing is not None:
            return PostResult(existing, created=False)
    if count and not ratelimit.allow_post(author.pk):
        raise rate_limited(ratelimit.post_refusal_wait())
    try:
        with transaction.atomic():
            message = _new_message(req, body)
            message.save()
    except IntegrityError:
        # Only a concurrent retry with the same client_id can collide here.
        existing = client_id and idempotency.by_client_id(
            author=author, client_id=client_id, room=room, body=body
        )
        if not existing:
            raise
        return PostResult(existing, created=False)
    return PostResult(message, created=True)


def edit_message(*, user: AbstractBaseUser, message: Message, body: object) -> Message:
    """Replace a message's body; only its author may, and not once it is deleted."""
    body = check_body(body)
    if message.author_id != user.pk:
        raise ActionError("forbidden", "only the author edits a message")
    return _change_message(message, events.MESSAGE_EDITED, body=body)


def delete_message(*, user: AbstractBaseUser, message: Message) -> Message:
    """Delete a message (it stays as a tombstone so seqs stay gapless): its author, the room's
    owner or moderators, or staff. Deleting it again changes nothing."""
    if message.deleted_at is not None:
        return message
    moderators = (Membership.Role.OWNER, Membership.Role.MODERATOR)
    if not (
        message.author_id == user.pk
        or user.is_staff
        or selectors.role_in(user=user, room=message.room) in moderators
    ):
        raise ActionError("forbidden", "only the author or a moderator deletes a message")
    return _change_message(message, events.MESSAGE_DELETED, body="")


def _change_message(message: Message, type: str, *, body: str) -> Message:
    def mutate(locked: Message) -> str:
        if locked.deleted_at is not None:
            raise ActionError("message_deleted", "the message was deleted")
        locked.author = message.author
        locked.body = body
        if type == events.MESSAGE_EDITED:
            locked.edited_at = timezone.now()
        else:
            locked.deleted_at = timezone.now()
        return type

    (changed,) = changes.change_messages(message.room, [message.pk], mutate)
    return changed


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
        membership.delete()
        _record_membership(events.ROOM_LEFT, membership)
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
        target.delete()
        _record_membership(events.ROOM_LEFT, target)


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
            _record_membership(events.ROOM_JOINED, owner)
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


def mark_mention_read(*, user: AbstractBaseUser, mention_id: int) -> Mention | None:
    """Mark one of ``user``'s mentions read (idempotent); None if they have no such mention."""
    mention = Mention.objects.filter(user=user, pk=mention_id).first()
    if mention is not None and mention.read_at is None:
        mention.read_at = timezone.now()
        mention.save(update_fields=["read_at"])
    return mention


def _add_member(user: AbstractBaseUser, room: Room) -> Membership:
    """Make ``user`` a member (idempotent); a new membership publishes room.joined."""
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(user=user, room=room)
        if created:
            _record_membership(events.ROOM_JOINED, membership)
    return membership


def _record_membership(type: str, membership: Membership) -> None:
    event = events.membership(
        type,
        room=membership.room.slug,
        user=membership.user.get_username(),
        role=membership.role,
        ts=timezone.now(),
    )
    outbox.record(event, room_id=membership.room_id)
