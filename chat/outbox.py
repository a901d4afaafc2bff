"""The transactional outbox: events are written with the change, published after commit.

``record`` is the one way an event enters the outbox, for every write: new messages, edits and
deletes, memberships, presence, access changes.
"""

from __future__ import annotations

import uuid
from functools import partial

from django.db import transaction
from django.utils.dateparse import parse_datetime

from chat import relay
from chat.outbox_table import OutboxEvent
from contract import events
from database import sql


def record(*recorded: events.Event, room_id: int | None) -> list[OutboxEvent]:
    """Write the events (of one room, or of no room: None) to the outbox, in their order, with
    one INSERT, and publish them once the transaction commits.

    Must be called inside the transaction that makes the change the events describe, so they
    exist if and only if the change does. Right after commit the rows are published as they
    are, without reading them back (``relay.flush_room``; more than a relay page of rows, such as
    a departed user's thousands of messages, are read back in pages so memory does not grow
    until commit). If Redis is unreachable then, the rows stay pending and the relay publishes
    them later. A message's or room event's change number is its payload's.
    """
    if not recorded:
        return []
    rows = [_row(event, room_id=room_id) for event in recorded]
    sql.insert_instances(rows)
    written = rows if len(rows) <= relay.BATCH else None
    transaction.on_commit(partial(relay.flush_after_commit, room_id, written))
    return rows


def _row(event: events.Event, *, room_id: int | None) -> OutboxEvent:
    return OutboxEvent(
        event_id=uuid.UUID(event["id"]),
        topic=event["topic"],
        type=event["type"],
        room_id=room_id,
        seq=event["seq"],
        # A room's changes (messages, room events) carry their change number; others none.
        change=event["payload"].get("change"),
        event=event,
        created_at=parse_datetime(event["ts"]),
    )
