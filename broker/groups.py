"""Consumer groups, created where each subscriber's ledger says it stopped.

At a subscriber's first start its groups begin at the stream's start (``"oldest"``) or end
(``"now"``), and the time is recorded (``SubscriberState.started_at``): a "now" subscriber's
events are those recorded from then on.

When a group of a subscriber that has started before is missing (Redis restarted empty, was
flushed or failed over to a replica that had not caught up, or the group was destroyed), it is
created again at the stream id of the last event the subscriber's ledger recorded on that topic,
never at "now". Redis makes stream ids from its clock, so every entry added since (new events,
and what the relay republished: chat/repair.py) sorts after it and is read; the ledger drops
whatever was already processed.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from django.utils import timezone

from broker import streams
from broker.models import ProcessedEvent, SubscriberState
from broker.registry import Subscriber


@dataclass(frozen=True)
class Created:
    subscriber: str
    topic: str
    start: str
    recreated: bool  # the subscriber had started before: its group had been lost


def ensure_groups(client: redis.Redis, subs: list[Subscriber]) -> list[Created]:
    """Create the missing groups of ``subs``; return those created (lost ones are
    ``recreated``). Costs one XINFO GROUPS per topic when every group exists."""
    created: list[Created] = []
    for sub in subs:
        missing = [t for t in sub.topics if not streams.has_group(client, t, sub.group)]
        if not missing:
            continue
        state, _ = SubscriberState.objects.get_or_create(subscriber=sub.name)
        started = state.started_at is not None
        if not started:
            # Before the groups exist: an event recorded meanwhile counts as the subscriber's
            # (a republish may give it a few events of the first start's instant, never fewer).
            SubscriberState.objects.filter(pk=state.pk, started_at__isnull=True).update(
                started_at=timezone.now()
            )
        for topic in missing:
            start = resume_id(sub, topic) if started else ("0" if sub.start == "oldest" else "$")
            if streams.ensure_group(client, sub, topic, start):
                created.append(Created(sub.name, topic, start, started))
    return created


def resume_id(sub: Subscriber, topic: str) -> str:
    """The stream id of the last event ``sub``'s ledger recorded on ``topic`` ("0": none)."""
    last = (
        ProcessedEvent.objects.filter(subscriber=sub.name, topic=topic)
        .order_by("-processed_at", "-id")
        .values_list("stream_id", flat=True)
        .first()
    )
    return last or "0"
