"""Putting back on Redis what it lost: the outbox events some subscriber has not processed.

The database holds every event (the outbox) and what each subscriber processed (its ledger,
``ProcessedEvent``, and its dead letters). When Redis lost its data (broker/loss.py notices),
the relay calls :func:`repair`: a new marker, the lost consumer groups created again where each
ledger stopped (broker/groups.py), then every published event that a started subscriber of its
topic has neither processed nor dead-lettered is appended to its topic stream again, oldest
first. A "now" subscriber is owed only the events recorded since it first started.

The republished entries go to the streams only, not to the rooms' live groups: browsers recover
missed messages themselves (seq gaps, ``sync``), and the publish guard is not consulted (a room's
guard may already be past these changes). A subscriber that had processed an event drops the
copy by its ledger, so a repair can run twice without harm.

Retention follows: :func:`prune` deletes a published row only once every started subscriber of
its topic has processed it, or once it is older than ``OUTBOX_MAX_RETENTION_HOURS`` (the cap, so
a subscriber that is gone for good does not keep the outbox forever).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from django.db.models import Exists, F, Max, OuterRef, Q, QuerySet
from django.utils import timezone

from broker import groups, loss, registry
from broker.models import DeadLetter, ProcessedEvent, RedisState, SubscriberState
from broker.registry import Subscriber
from chat.outbox_table import OutboxEvent
from contract import events
from ops import metrics

log = logging.getLogger("parley.relay")

BATCH = 500


def started() -> list[tuple[Subscriber, SubscriberState]]:
    """The registered subscribers whose groups were created at least once, with their state."""
    states = {s.subscriber: s for s in SubscriberState.objects.filter(started_at__isnull=False)}
    return [(sub, states[name]) for name, sub in registry.subscribers().items() if name in states]


def owed(sub: Subscriber, state: SubscriberState) -> Q:
    """The outbox rows ``sub`` is owed and has neither processed nor dead-lettered."""
    condition = Q(topic__in=sub.topics)
    if sub.start == "now":
        condition &= Q(created_at__gte=state.started_at)
    processed = ProcessedEvent.objects.filter(subscriber=sub.name, event_id=OuterRef("event_id"))
    dead = DeadLetter.objects.filter(subscriber=sub.name, event_id=OuterRef("event_id"))
    return condition & ~Q(Exists(processed)) & ~Q(Exists(dead))


def unprocessed(sub: Subscriber, state: SubscriberState) -> QuerySet[OutboxEvent]:
    """Published rows ``sub`` is owed and has not processed, oldest first."""
    return OutboxEvent.objects.filter(owed(sub, state), published_at__isnull=False).order_by("id")


def repair(client: redis.Redis, reason: str, *, answers: int) -> int:
    """Put back what Redis lost (see the module docstring); return the events republished.

    ``answers``: the repair requests (``RedisState.requests``) this repair answers. Raises
    RedisError or DatabaseError; the caller retries, and a repeat is harmless."""
    loss.report(reason, process="relay")
    loss.new_marker(client)  # first: a loss during the repair is noticed by the next check
    # Owed: the subscribers started before the loss (one starting now begins afresh).
    subs = started()
    for created in groups.ensure_groups(client, [sub for sub, _ in subs]):
        if created.recreated:
            log.warning(
                "%s: group on %s created again at %s (its ledger's last event)",
                created.subscriber,
                created.topic,
                created.start,
            )
    per_sub = {sub.name: unprocessed(sub, state).count() for sub, state in subs}
    owed_by_any = Q(pk__in=[])
    for sub, state in subs:
        owed_by_any |= owed(sub, state)
    total = republish(client, OutboxEvent.objects.filter(owed_by_any, published_at__isnull=False))
    record(reason, per_sub, total, answers=answers)
    return total


def record(reason: str, per_sub: dict[str, int], total: int, *, answers: int | None) -> None:
    """Count a repair (a loss) and log what it republished for whom."""
    for name, n in per_sub.items():
        SubscriberState.objects.filter(subscriber=name).update(republished=F("republished") + n)
    RedisState.objects.filter(pk=loss.state().pk).update(
        losses=F("losses") + 1,
        republished=F("republished") + total,
        **({"handled": answers} if answers is not None else {}),
        last_loss_at=timezone.now(),
        last_loss_reason=reason[:200],
    )
    metrics.REDIS_REPUBLISHED.inc(total)
    log.warning(
        "Redis lost its data (%s): republished %d events subscribers had not processed (%s)",
        reason,
        total,
        ", ".join(f"{name} {n}" for name, n in per_sub.items()) or "no subscriber started",
    )


def republish(client: redis.Redis, rows: QuerySet[OutboxEvent]) -> int:
    """XADD ``rows`` to their topic streams again, oldest first, in pages; return how many."""
    rows = rows.order_by("id")
    total, after = 0, 0
    while True:
        page = list(rows.filter(id__gt=after)[:BATCH])
        if not page:
            return total
        pipe = client.pipeline(transaction=False)
        for row in page:
            pipe.xadd(
                events.stream_key(row.topic),
                {"id": str(row.event_id), "type": row.type, "event": events.dumps(row.event)},
            )
        pipe.execute()
        total += len(page)
        after = page[-1].id


def prune(*, older_than: timedelta, cap: timedelta, scanned: dict[str, int] | None = None) -> int:
    """Delete outbox rows published longer ago than ``older_than`` that every started
    subscriber of their topic has processed, and every row published longer ago than ``cap``.
    Pending rows are kept.

    ``scanned`` (kept by the caller across calls): per subscriber, the id its scan for the
    first unprocessed row starts from. Rows below it were processed (or dead-lettered) and stay
    so, so a relay does not read the whole retained outbox once a minute."""
    scanned = {} if scanned is None else scanned
    now = timezone.now()
    keep_from = None  # the oldest row some subscriber still needs
    for sub, state in started():
        rows = unprocessed(sub, state).filter(id__gte=scanned.get(sub.name, 0))
        first = rows.values_list("id", flat=True).first()
        if first is None:
            top = OutboxEvent.objects.filter(published_at__isnull=False).aggregate(m=Max("id"))
            scanned[sub.name] = (top["m"] or 0) + 1
            continue
        scanned[sub.name] = first
        if keep_from is None or first < keep_from:
            keep_from = first
    done = Q(published_at__lt=now - older_than)
    if keep_from is not None:
        done &= Q(id__lt=keep_from)
    deleted, _ = OutboxEvent.objects.filter(done | Q(published_at__lt=now - cap)).delete()
    return deleted
