"""The relay's safety net: events a subscriber has gone past on Redis without processing them.

The marker and identity checks (broker/loss.py) see Redis restart, flush or fail over. They do not
see writes that went to the wrong server: after a Sentinel failover a demoted primary accepts
writes from pooled connections until the sentinels reconfigure it, seconds later, and then drops
them. So, every ``RELAY_RECONCILE_SECONDS``, the relay notes each topic stream's last id and the
time (a *mark*). At the next round, a subscriber whose group on a topic has acknowledged
everything up to that mark has processed every event published before it that reached this
Redis: an event of that topic published before the mark (less ``MARGIN``, for clocks of other
hosts) that it has neither processed nor dead-lettered went elsewhere and was lost. It is
republished and counted as a loss. A subscriber still behind is simply checked at a later round.

Each subscriber's scan starts after the rows already settled (kept in memory; the relay's first
round reads the outbox once).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import redis
from django.db.models import Max, Q
from django.utils import timezone

from broker import streams
from broker.registry import Subscriber
from chat.outbox_table import OutboxEvent
from chat.repair import owed, record, republish, started
from contract import events

MARGIN = timedelta(seconds=1)
# A row created this long before a mark is committed by then: its id can be settled.
COMMITTED = timedelta(seconds=5)


class Reconciler:
    def __init__(self) -> None:
        self.mark: tuple[datetime, dict[str, str]] | None = None
        self.settled: dict[str, int] = {}  # subscriber -> every row up to this id is settled

    def round(self, client: redis.Redis) -> int:
        """One round (see the module docstring); return the events republished."""
        now = timezone.now()
        last_ids = {topic: _last_id(client, topic) for topic in events.TOPICS}
        per_sub: dict[str, int] = {}
        lost = Q(pk__in=[])
        if self.mark is not None:
            since, marked = self.mark
            cutoff = since - MARGIN
            for sub, state in started():
                if not all(_acked_past(client, sub, t, marked.get(t)) for t in sub.topics):
                    continue
                after = self.settled.get(sub.name, 0)
                missing = Q(owed(sub, state), id__gt=after, published_at__lt=cutoff)
                n = OutboxEvent.objects.filter(missing).count()
                if n:
                    per_sub[sub.name] = n
                    lost |= missing
                self.settled[sub.name] = _settled_up_to(sub, after, cutoff)
        self.mark = (now, last_ids)
        if not per_sub:
            return 0
        total = republish(client, OutboxEvent.objects.filter(lost))
        record("events missing from the streams", per_sub, total, answers=None)
        return total


def _last_id(client: redis.Redis, topic: str) -> str:
    try:
        return streams.decode(client.xinfo_stream(events.stream_key(topic))["last-generated-id"])
    except redis.ResponseError:  # no stream yet
        return "0-0"


def _acked_past(client: redis.Redis, sub: Subscriber, topic: str, mark: str | None) -> bool:
    """Whether ``sub``'s group on ``topic`` has acknowledged every entry up to ``mark``."""
    if mark is None or mark == "0-0":
        return True
    key = events.stream_key(topic)
    try:
        group = next(
            (g for g in client.xinfo_groups(key) if streams.decode(g["name"]) == sub.group), None
        )
    except redis.ResponseError:
        return False
    if group is None:
        return False
    if streams.compare_ids(streams.decode(group["last-delivered-id"]), mark) < 0:
        return False
    if group["pending"]:
        oldest = client.xpending(key, sub.group)["min"]
        if oldest is None:  # the group or its entries went meanwhile (e.g. a FLUSHALL): next round
            return False
        return streams.compare_ids(streams.decode(oldest), mark) > 0
    return True


def _settled_up_to(sub: Subscriber, after: int, cutoff: datetime) -> int:
    """The highest id below which every row of ``sub``'s topics is published before
    ``cutoff`` and committed: checked now, never to be checked again."""
    rows = OutboxEvent.objects.filter(topic__in=sub.topics, id__gt=after)
    open_row = (
        rows.filter(
            Q(published_at__isnull=True)
            | Q(published_at__gte=cutoff)
            | Q(created_at__gte=cutoff - COMMITTED)
        )
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )
    if open_row is not None:
        return open_row - 1
    return rows.aggregate(top=Max("id"))["top"] or after
