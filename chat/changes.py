"""The one write path of a change to existing messages: an edit, a deletion, and the messages of
an author who left for good (tombstoned or re-attributed, see chat.departure).

A change takes the room's next change number and records its event in the outbox in the same
transaction, exactly like a new message; a batch of changes of one room is the same write done
for many messages at once (one change number each, in seq order, one UPDATE, one outbox INSERT).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import transaction

from chat import outbox
from chat.models import Message, Room
from contract import events
from database import sql

# What a change may write; everything else of a message is fixed once it exists.
CHANGED_FIELDS = ["body", "change", "edited_at", "deleted_at", "author", "client_id"]

# Changes one message in memory and names its event (message.edited / message.deleted), or
# returns None to leave that message as it is.
Mutation = Callable[[Message], "str | None"]


def change_messages(
    room: Room, message_ids: list[int], mutate: Mutation, *, at: datetime | None = None
) -> list[Message]:
    """Lock the messages ``message_ids`` of ``room``, let ``mutate`` change each (in seq order),
    then give the changed ones the room's next change numbers, write them, and record one event
    each (its ``ts`` is ``at``, or the time the change wrote: edited_at / deleted_at).

    ``mutate`` must leave ``message.author`` loaded (it is read for the event), or set it.
    Atomic: when ``mutate`` raises, nothing is written. The events are published after the
    outermost transaction commits. Returns the changed messages, in seq order.
    """
    with transaction.atomic():
        locked = Message.objects.select_for_update().filter(room_id=room.pk, pk__in=message_ids)
        changed: list[tuple[Message, str]] = []
        for message in locked.order_by("seq"):
            message.room = room
            type = mutate(message)
            if type is not None:
                changed.append((message, type))
        if not changed:
            return []
        _, last = Room.allocate(room.pk, new_message=False, count=len(changed))
        for i, (message, _) in enumerate(changed):
            message.change = last - len(changed) + 1 + i
        sql.update_instances([m for m, _ in changed], CHANGED_FIELDS)
        outbox.record(
            *(events.message_changed(type, m, ts=at) for m, type in changed), room_id=room.pk
        )
    return [m for m, _ in changed]
