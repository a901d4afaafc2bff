"""The transactional outbox: events are written with the change, published after commit."""

from __future__ import annotations

import uuid
from functools import partial

from django.db import transaction
from django.utils.dateparse import parse_datetime

from chat import events, relay
from chat.models import OutboxEvent
from database import sql


def record(event: events.Event, *, room_id: int | None, change: int | None = None) -> OutboxEvent:
    """Write ``event`` to the outbox and publish it once the transaction commits.

    Must be called inside the transaction that makes the change the event describes, so the
    event exists if and only if the change does. Publishing is attempted right after commit;
    if Redis is unreachable then, the row stays pending and the relay publishes it later.
    """
    row = _row(event, room_id=room_id, change=change)
    row.save()
    transaction.on_commit(partial(relay.flush_after_commit, room_id))
    return row


def record_many(
    events_and_changes: list[tuple[events.Event, int | None]], *, room_id: int | None
) -> None:
    """``record`` for several events of one room, in their order, with one INSERT.

    Up to a relay page of rows is handed to the publisher as written; more (a departed user's
    thousands of messages) are read back in pages, so memory does not grow until commit."""
    rows = [_row(event, room_id=room_id, change=change) for event, change in events_and_changes]
    sql.insert_instances(rows)
    written = rows if len(rows) <= relay.BATCH else None
    transaction.on_commit(partial(relay.flush_after_commit, room_id, written))


def _row(event: events.Event, *, room_id: int | None, change: int | None) -> OutboxEvent:
    return OutboxEvent(
        event_id=uuid.UUID(event["id"]),
        topic=event["topic"],
        type=event["type"],
        room_id=room_id,
        seq=event["seq"],
        change=change,
        event=event,
        created_at=parse_datetime(event["ts"]),
    )
