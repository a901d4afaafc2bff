"""Per-subscriber health: what ``manage.py consumers`` prints and the dashboard will show."""

from __future__ import annotations

from typing import TypedDict

import redis

from broker import streams
from broker.models import DeadLetter, RedisState, SubscriberState
from broker.registry import Subscriber
from contract.events import stream_key


class SubscriberStats(TypedDict):
    lag: int  # events not yet processed: never delivered + delivered but not acknowledged
    pending: int  # delivered, not yet acknowledged
    dead: int  # dead letters not redriven
    processed: int
    last_processed_at: str | None
    workers: list[str]
    republished: int  # events republished for it after Redis lost them (chat/repair.py)
    redis_losses: int  # losses of Redis data repaired so far (the same for every subscriber)


def subscriber_stats(client: redis.Redis, sub: Subscriber) -> SubscriberStats:
    undelivered = pending = 0
    for topic in sub.topics:
        key = stream_key(topic)
        group = _group_info(client, key, sub.group)
        if group is None:  # not created yet: everything retained is still to come
            undelivered += client.xlen(key) if sub.start == "oldest" else 0
            continue
        pending += group["pending"]
        lag = group.get("lag")  # Redis >= 7 counts it; older servers do not
        if lag is None:
            last = streams.decode(group["last-delivered-id"])
            lag = streams.count_range(client, key, f"({last}")
        undelivered += lag
    state = SubscriberState.objects.filter(subscriber=sub.name).first()
    workers = sorted(
        streams.decode(k).rsplit(":", 1)[-1] for k in client.scan_iter(streams.worker_key(sub.name))
    )
    return {
        "lag": undelivered + pending,
        "pending": pending,
        "dead": DeadLetter.objects.filter(subscriber=sub.name, redriven_at__isnull=True).count(),
        "processed": state.processed if state else 0,
        "last_processed_at": state.last_processed_at.isoformat()
        if state and state.last_processed_at
        else None,
        "workers": workers,
        "republished": state.republished if state else 0,
        "redis_losses": RedisState.objects.filter(pk=1).values_list("losses", flat=True).first()
        or 0,
    }


def _group_info(client: redis.Redis, key: str, group: str) -> dict | None:
    try:
        groups = client.xinfo_groups(key)
    except redis.ResponseError:  # no such stream
        return None
    return next((g for g in groups if streams.decode(g["name"]) == group), None)
