"""Changing a posted message: an edit by its author, a deletion (a tombstone) by its author, a
moderator or staff. Both go through ``chat.changes`` (a change number and an outbox event)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from chat import changes, selectors
from chat.errors import ActionError
from chat.models import Membership, Message
from chat.validation import check_body
from contract import events


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
