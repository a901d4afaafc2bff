"""Reads of the aggregates: what the dashboard and the analytics API show."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone

from analytics.aggregates import minute_of
from analytics.latency import percentiles
from analytics.models import ConnectionSession, LatencyMinute, RoomMinute, UserMinute


def summary(*, minutes: int = 60, now: datetime | None = None) -> dict[str, Any]:
    """Figures for the last ``minutes`` minutes (the current one included), oldest first."""
    now = now or timezone.now()
    since = minute_of(now) - timedelta(minutes=minutes - 1)
    rooms = RoomMinute.objects.filter(minute__gte=since)
    users = UserMinute.objects.filter(minute__gte=since)
    per_minute = {
        row["minute"]: row
        for row in rooms.values("minute").annotate(
            messages=Sum("messages"), joins=Sum("joins"), leaves=Sum("leaves")
        )
    }
    active = {r["minute"]: r["n"] for r in users.values("minute").annotate(n=Count("user"))}
    series = []
    for i in range(minutes):
        minute = since + timedelta(minutes=i)
        row = per_minute.get(minute, {})
        series.append(
            {
                "minute": minute.isoformat(),
                "messages": row.get("messages") or 0,
                "joins": row.get("joins") or 0,
                "leaves": row.get("leaves") or 0,
                "active_users": active.get(minute, 0),
            }
        )
    closed = ConnectionSession.objects.filter(disconnected_at__gte=since)
    return {
        "since": since.isoformat(),
        "minutes": series,
        "totals": {
            "messages": sum(m["messages"] for m in series),
            "joins": sum(m["joins"] for m in series),
            "leaves": sum(m["leaves"] for m in series),
            "active_users": users.values("user").distinct().count(),
        },
        "top_rooms": list(
            rooms.values("room")
            .annotate(messages=Sum("messages"))
            .filter(messages__gt=0)
            .order_by("-messages", "room")[:10]
        ),
        "top_users": list(
            users.values("user")
            .annotate(messages=Sum("messages"))
            .order_by("-messages", "user")[:10]
        ),
        "connections": {
            "open": ConnectionSession.objects.filter(
                Q(connected_at__isnull=False), Q(disconnected_at__isnull=True)
            ).count(),
            "closed": closed.count(),
            "mean_duration_s": closed.aggregate(d=Avg("duration_s"))["d"],
        },
        "latency": latency(since=since),
    }


def latency(*, since: datetime) -> dict[str, Any]:
    """Push latency (event created -> processed by analytics) over the window: p50 and p95 are
    the measured nearest-rank percentiles within 0.5 % (analytics.latency), not bucket bounds.
    Minutes recorded before the fine histogram existed count in ``count`` and the mean only."""
    rows = list(LatencyMinute.objects.filter(minute__gte=since))
    count = sum(r.count for r in rows)
    max_ms = max((r.max_ms for r in rows), default=None)
    quantiles = percentiles((r.buckets for r in rows), (0.50, 0.95), max_ms=max_ms)
    return {
        "count": count,
        "mean_ms": (sum(r.total_ms for r in rows) / count) if count else None,
        "max_ms": max_ms,
        "p50_ms": quantiles[0.50],
        "p95_ms": quantiles[0.95],
    }
