"""Folding a batch of events into the aggregates (called inside the subscriber's transaction)."""

from __future__ import annotations

import bisect
from collections import Counter
from datetime import datetime

from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics.models import (
    BehaviourRecord,
    ConnectionSession,
    LatencyMinute,
    RoomMinute,
    UserMinute,
)
from chat import events

LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_ROOM_COUNTERS = {
    events.MESSAGE_CREATED: "messages",
    events.ROOM_JOINED: "joins",
    events.ROOM_LEFT: "leaves",
    events.USER_CONNECTED: "connects",
}


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def apply(batch: list[events.Event]) -> None:
    now = timezone.now()
    records = []
    room_counts: Counter[tuple[str, datetime, str]] = Counter()
    user_counts: Counter[tuple[str, datetime]] = Counter()
    latencies: dict[datetime, list[float]] = {}
    for event in batch:
        occurred = parse_datetime(event["ts"])
        latency_ms = max(0.0, (now - occurred).total_seconds() * 1000)
        user = _user_of(event)
        records.append(
            BehaviourRecord(
                event_id=event["id"],
                topic=event["topic"],
                type=event["type"],
                room=event["room"] or "",
                user=user,
                occurred_at=occurred,
                processed_at=now,
                latency_ms=latency_ms,
                payload=event["payload"],
            )
        )
        minute = minute_of(occurred)
        counter = _ROOM_COUNTERS.get(event["type"])
        if counter and event["room"]:
            room_counts[(event["room"], minute, counter)] += 1
        if event["type"] == events.MESSAGE_CREATED:
            user_counts[(user, minute)] += 1
            latencies.setdefault(minute_of(now), []).append(latency_ms)
        if event["type"] in (events.USER_CONNECTED, events.USER_DISCONNECTED):
            _session(event, occurred)
    BehaviourRecord.objects.bulk_create(records)
    for (room, minute, counter), n in room_counts.items():
        RoomMinute.objects.get_or_create(room=room, minute=minute)
        RoomMinute.objects.filter(room=room, minute=minute).update(**{counter: F(counter) + n})
    for (user, minute), n in user_counts.items():
        UserMinute.objects.get_or_create(user=user, minute=minute)
        UserMinute.objects.filter(user=user, minute=minute).update(messages=F("messages") + n)
    for minute, values in latencies.items():
        _add_latencies(minute, values)


def _user_of(event: events.Event) -> str:
    payload = event["payload"]
    if event["type"] == events.MESSAGE_CREATED:
        return payload["message"]["author"]
    return payload.get("user", "")


def _session(event: events.Event, at: datetime) -> None:
    payload = event["payload"]
    session, _ = ConnectionSession.objects.get_or_create(
        session=payload["session"], defaults={"user": payload["user"], "room": event["room"] or ""}
    )
    if event["type"] == events.USER_CONNECTED:
        session.connected_at = at
    else:
        session.disconnected_at = at
    if session.connected_at and session.disconnected_at:
        session.duration_s = (session.disconnected_at - session.connected_at).total_seconds()
    session.save()


def _add_latencies(minute: datetime, values: list[float]) -> None:
    row, _ = LatencyMinute.objects.select_for_update().get_or_create(minute=minute)
    histogram = dict(row.histogram)
    for value in values:
        index = bisect.bisect_left(LATENCY_BUCKETS_MS, value)
        bound = str(LATENCY_BUCKETS_MS[index]) if index < len(LATENCY_BUCKETS_MS) else "inf"
        histogram[bound] = histogram.get(bound, 0) + 1
    row.count += len(values)
    row.total_ms += sum(values)
    row.max_ms = max(row.max_ms, *values)
    row.histogram = histogram
    row.save()
