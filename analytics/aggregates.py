"""Folding a batch of events into the aggregates (called inside the subscriber's transaction)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics import erasure, latency, sessions
from analytics.models import (
    BehaviourRecord,
    LatencyMinute,
    RoomMinute,
    UserMinute,
)
from contract import events
from database import sql

_ROOM_COUNTERS = {
    events.MESSAGE_CREATED: "messages",
    events.ROOM_JOINED: "joins",
    events.ROOM_LEFT: "leaves",
    events.USER_CONNECTED: "connects",
}


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


_ROOM_COUNTER_NAMES = ("messages", "joins", "leaves", "connects")
_RECORD_COLUMNS = (
    "event_id",
    "topic",
    "type",
    "room",
    "user",
    "occurred_at",
    "processed_at",
    "latency_ms",
    "payload",
)


def apply(batch: list[events.Event]) -> None:
    """One INSERT of the batch's behaviour records and one UPSERT per aggregate table (a row per
    key of the batch, the counts summed in Python), so the cost of a batch hardly grows with the
    number of events that land in the same minutes."""
    now = timezone.now()
    records = []
    room_counts: dict[tuple[str, datetime], list[int]] = {}
    user_counts: Counter[tuple[str, datetime]] = Counter()
    latencies: dict[datetime, list[float]] = {}
    seen: list[sessions.Seen] = []
    gone = erasure.forgotten({name for event in batch for name in _names_in(event)})
    for event in batch:
        occurred = parse_datetime(event["ts"])
        latency_ms = max(0.0, (now - occurred).total_seconds() * 1000)
        user = erasure.shown(_user_of(event), occurred, gone)
        room = event["room"] or ""
        records.append(
            (
                uuid.UUID(event["id"]),
                event["topic"],
                event["type"],
                room,
                user,
                occurred,
                now,
                latency_ms,
                erasure.stored_payload(event["payload"], occurred, gone),
            )
        )
        minute = minute_of(occurred)
        counter = _ROOM_COUNTERS.get(event["type"])
        if counter and room:
            counts = room_counts.setdefault((room, minute), [0, 0, 0, 0])
            counts[_ROOM_COUNTER_NAMES.index(counter)] += 1
        if event["type"] == events.MESSAGE_CREATED:
            user_counts[(user, minute)] += 1
            latencies.setdefault(minute_of(now), []).append(latency_ms)
        if event["type"] in (events.USER_CONNECTED, events.USER_DISCONNECTED):
            seen.append(
                sessions.Seen(event["payload"]["session"], event["type"], user, room, occurred)
            )
    sql.insert(BehaviourRecord, _RECORD_COLUMNS, records)
    sql.upsert_add(RoomMinute, ("room", "minute"), _ROOM_COUNTER_NAMES, room_counts)
    sql.upsert_add(
        UserMinute, ("user", "minute"), ("messages",), {k: (n,) for k, n in user_counts.items()}
    )
    sessions.apply(seen)
    _add_latencies(latencies)


def _user_of(event: events.Event) -> str:
    payload = event["payload"]
    if event["type"] == events.MESSAGE_CREATED:
        return payload["message"]["author"]
    return payload.get("user", "")


def _names_in(event: events.Event) -> tuple[str, ...]:
    payload = event["payload"]
    return (payload.get("user", ""), payload.get("message", {}).get("author", ""))


def _add_latencies(latencies: dict[datetime, list[float]]) -> None:
    """Merge the batch's latencies into their minutes' histograms: one INSERT of the minutes
    not there yet, one SELECT of the batch's minutes (locked on PostgreSQL, in order), one
    UPDATE, however many minutes the batch spans."""
    if not latencies:
        return
    minutes = sorted(latencies)
    sql.insert_new(
        LatencyMinute,
        ("minute", "count", "total_ms", "max_ms", "buckets"),
        [(minute, 0, 0.0, 0.0, {}) for minute in minutes],
        unique=("minute",),
    )
    changed = sql.rows_in(LatencyMinute, "minute", minutes, lock=True)
    for row in changed:
        values = latencies[row.minute]
        row.count += len(values)
        row.total_ms += sum(values)
        row.max_ms = max(row.max_ms, *values)
        row.buckets = latency.add(row.buckets, values)
    sql.update_instances(changed, ("count", "total_ms", "max_ms", "buckets"))
