"""Access that is taken away reaches open sockets: events, the checks they trigger, and the
per-process gate that routes them.

Every change that can take access away — a membership ended (left, removed in the admin or the
shell), a room made private or deleted, a user deactivated or deleted, a password changed, a
token revoked or deleted, a session logged out — records an ``access.revoked`` event in the
outbox in the transaction that makes the change (the receivers below: one place, whichever code
path made the change). The relay publishes it like any other event: XADD to the ``chat.access``
stream and PUBLISH to the ``access`` group, which every server process listens on once.

In each process the ``Gate`` hands the event to the open sockets it concerns. A socket then
stops delivering (live frames are only noted, presence and typing dropped) and re-checks its
access against the database (``socket_access``); it closes with 4401 (credentials) or 4403 (room
no longer readable) or, if access still holds, catches up on what it held back. An event that
names the socket's own credential (token revoked, session logged out) closes it without asking.

Defence in depth: a ``sync``, a Redis reconnect (the process may have missed the event) and a
post re-check too (chat.consumers, chat.actions).

Ordering: an event about a room is recorded with the room's id and its row is written under
the room's row lock, so it is published before any message committed after it (the relay
publishes a room's pending events in order). Changes made with ``QuerySet.update()`` or raw SQL
send no signal and record nothing; the admin, the actions and ``save()``/``delete()`` all do.
"""

from __future__ import annotations

import asyncio
import logging

from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model, user_logged_out
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

from accounts.credentials import Credential, credential_name, credential_valid, session_digest
from accounts.models import ApiToken
from chat import outbox, room_events
from chat.models import Membership, Room
from contract import events
from infra.loops import per_loop

log = logging.getLogger("parley.access")

CLOSE_CREDENTIALS = 4401
CLOSE_ROOM = 4403


# --- checks (run on a database thread) -------------------------------------------------------
def socket_access(
    *, user_id: int, credential: Credential | None, room_id: int | None
) -> int | None:
    """None while the socket may stay open; else the close code: 4401 when its credential no
    longer authenticates an active user, 4403 when room ``room_id`` is gone or no longer
    readable by the user (``room_id`` None: no room to check)."""
    if not credential_valid(user_id=user_id, credential=credential):
        return CLOSE_CREDENTIALS
    if room_id is None:
        return None
    room = Room.objects.filter(pk=room_id).values_list("is_private", flat=True).first()
    if room is None:
        return CLOSE_ROOM
    if room and not Membership.objects.filter(user_id=user_id, room_id=room_id).exists():
        return CLOSE_ROOM
    return None


# --- recording (inside the transaction of the change) ----------------------------------------
def record(
    reason: str,
    *,
    room: Room | None = None,
    room_gone: bool = False,
    user_id: int | None = None,
    credential: str | None = None,
) -> None:
    """Record access.revoked for ``room`` (None: every room) and user ``user_id`` (None:
    everyone). Users are named by id only (a deleted user's name is never published).

    An event about a room that still exists is written under the room's row lock, in the room's
    outbox order; one about a deleted room (``room_gone``) or about no room, outside it."""
    event = events.access_revoked(
        reason=reason,
        ts=timezone.now(),
        room=room.slug if room is not None else None,
        room_id=room.pk if room is not None else None,
        user_id=user_id,
        credential=credential,
    )
    in_room = room is not None and not room_gone
    with transaction.atomic():  # joins the change's transaction when there is one
        if in_room:
            # The room's row lock: a message committed after this change is written after it.
            list(Room.objects.select_for_update().filter(pk=room.pk).values_list("pk"))
        outbox.record(event, room_id=room.pk if in_room else None)


def _cascading(origin, model) -> bool:
    """Whether a delete started at ``model`` (an instance or a queryset of it)."""
    return isinstance(origin, model) or (
        isinstance(origin, QuerySet) and issubclass(origin.model, model)
    )


@receiver(post_delete, sender=Membership)
def _membership_ended(sender, instance: Membership, origin=None, **kwargs) -> None:
    # Deleting the room or the user records one event of its own for all of them (and a
    # deleted room has no sockets left to tell; a user is deleted by accounts.actions, which
    # ends each membership first).
    if _cascading(origin, Room) or _cascading(origin, get_user_model()):
        return
    record("membership_ended", room=instance.room, user_id=instance.user_id)
    room_events.membership_deleted(instance)  # room.left, the one place it is recorded


# What a room's sockets are told of when it changes (room.updated, chat.room_events).
_ROOM_SHOWN = ("slug", "title", "is_private")


@receiver(pre_save, sender=Room)
def _note_room_change(sender, instance: Room, update_fields=None, **kwargs) -> None:
    instance._became_private = instance._room_updated = False
    if instance._state.adding or not instance.pk:
        return
    old = Room.objects.filter(pk=instance.pk).values(*_ROOM_SHOWN).first()
    if old is None:
        return
    changed = {
        name
        for name in _ROOM_SHOWN
        if (update_fields is None or name in update_fields) and getattr(instance, name) != old[name]
    }
    instance._became_private = "is_private" in changed and instance.is_private
    instance._room_updated = bool(changed)


@receiver(post_save, sender=Room)
def _room_changed(sender, instance: Room, created: bool, **kwargs) -> None:
    if created:
        return
    if getattr(instance, "_became_private", False):
        instance._became_private = False
        record("room_private", room=instance)
    if getattr(instance, "_room_updated", False):
        instance._room_updated = False
        room_events.room_updated(instance)


@receiver(post_delete, sender=Room)
def _room_deleted(sender, instance: Room, **kwargs) -> None:
    record("room_deleted", room=instance, room_gone=True)


def _note_user_change(sender, instance, update_fields=None, **kwargs) -> None:
    instance._access_change = None
    watched = {"is_active", "password"}
    if not instance.pk or (update_fields is not None and not watched & set(update_fields)):
        return  # a new user, or e.g. last_login after a login
    old = sender.objects.filter(pk=instance.pk).values("is_active", "password").first()
    if old is None:
        return
    if old["is_active"] and not instance.is_active:
        instance._access_change = "user_deactivated"
    elif old["password"] != instance.password:
        instance._access_change = "password_changed"


def _user_changed(sender, instance, created: bool, **kwargs) -> None:
    reason = getattr(instance, "_access_change", None)
    if reason and not created:
        instance._access_change = None
        record(reason, user_id=instance.pk)


def _user_deleted(sender, instance, **kwargs) -> None:
    record("user_deleted", user_id=instance.pk)


User = get_user_model()
pre_save.connect(_note_user_change, sender=User, dispatch_uid="parley-access-user-pre")
post_save.connect(_user_changed, sender=User, dispatch_uid="parley-access-user-post")
post_delete.connect(_user_deleted, sender=User, dispatch_uid="parley-access-user-delete")


@receiver(post_save, sender=ApiToken)
def _token_revoked(sender, instance: ApiToken, update_fields=None, **kwargs) -> None:
    if instance.revoked_at is not None and update_fields and "revoked_at" in update_fields:
        _token_gone(instance)


@receiver(post_delete, sender=ApiToken)
def _token_deleted(sender, instance: ApiToken, origin=None, **kwargs) -> None:
    if not _cascading(origin, User):  # a deleted user's sockets all go anyway
        _token_gone(instance)


def _token_gone(token: ApiToken) -> None:
    record(
        "token_revoked",
        user_id=token.user_id,
        credential=credential_name(("token", token.pk)),
    )


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and key:
        record("logged_out", user_id=user.pk, credential="session:" + session_digest(key))


# --- the per-process gate ----------------------------------------------------------------------
class Gate:
    """The open sockets of one server process (one event loop), by user, and the one listener
    on the ``access`` group that hands them access.revoked.

    A socket registers before it checks its access at connect, so an event committed after
    that check is never missed. It must have ``user_id``, ``room_id`` (None: no single room),
    ``room_ids`` (the rooms a multiplexed socket follows),
    ``credential`` and ``access_changed(message, *, definitive)``; ``definitive`` means the event
    names the socket's own credential (revoked: close without asking the database)."""

    def __init__(self) -> None:
        self.sockets: dict[int, set] = {}
        self.listening = False

    async def enter(self, socket) -> None:
        self.sockets.setdefault(socket.user_id, set()).add(socket)
        if not self.listening:
            self.listening = True
            try:
                await get_channel_layer().listen(events.ACCESS_GROUP, self, self._on_access)
            except BaseException:
                self.listening = False
                raise

    def leave(self, socket) -> None:
        sockets = self.sockets.get(socket.user_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self.sockets[socket.user_id]

    def _on_access(self, message: dict) -> None:
        if message.get("type") != "chat.access":
            return None  # layer.reconnected: each socket re-checks on its own group's copy
        user_id, room_id = message["user_id"], message["room_id"]
        credential = message["credential"]
        if user_id is None:  # the room changed for everyone: its room sockets
            concerned = [
                s
                for ss in self.sockets.values()
                for s in ss
                if s.room_id == room_id or room_id in s.room_ids
            ]
        else:
            concerned = list(self.sockets.get(user_id, ()))
        for socket in concerned:
            if room_id is not None and socket.room_id not in (None, room_id):
                continue
            if credential is not None:
                if credential_name(socket.credential) != credential:
                    continue  # another token or session of the user: unaffected
                socket.access_changed(message, definitive=True)
            else:
                socket.access_changed(message, definitive=False)
        return None


gate = per_loop(Gate)


def keep(task: asyncio.Task, tasks: set) -> None:
    """Hold a reference to a fire-and-forget task until it is done."""
    tasks.add(task)
    task.add_done_callback(tasks.discard)
