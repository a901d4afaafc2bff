"""Stream retention: bounded memory, never at the expense of an unacknowledged event.

Each topic stream is trimmed to ``STREAM_MAXLEN`` entries, but never past the oldest entry some
consumer group still needs (its oldest pending entry, or the first entry after its
last-delivered id). Only when a stream outgrows ``STREAM_HARD_MAXLEN`` is it trimmed anyway: that
drops events some subscriber has not consumed, which is logged as an error and counted in
``parley:stream:dropped`` (field = topic).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from django.conf import settings

from broker import streams
from contract import redis_keys
from contract.events import stream_key

log = logging.getLogger("parley.broker")


def dropped_key() -> str:
    return redis_keys.key("stream", "dropped")


@dataclass(frozen=True)
class TrimResult:
    topic: str
    trimmed: int
    dropped_unconsumed: int


def oldest_needed(client: redis.Redis, key: str) -> str | None:
    """The smallest id some group still needs; None if no group needs anything in the stream."""
    needed = []
    for group in client.xinfo_groups(key):
        name = streams.decode(group["name"])
        if group["pending"]:
            summary = client.xpending(key, name)
            needed.append(streams.decode(summary["min"]))
        else:
            needed.append(streams.next_id(streams.decode(group["last-delivered-id"])))
    if not needed:
        return None
    oldest = needed[0]
    for candidate in needed[1:]:
        if streams.compare_ids(candidate, oldest) < 0:
            oldest = candidate
    return oldest


def trim_topic(client: redis.Redis, topic: str) -> TrimResult:
    maxlen = settings.PARLEY_BROKER["STREAM_MAXLEN"]
    hard = settings.PARLEY_BROKER["STREAM_HARD_MAXLEN"]
    key = stream_key(topic)
    length = client.xlen(key)
    if length <= maxlen:
        return TrimResult(topic, 0, 0)
    # The id of the first entry to keep if we trimmed to maxlen.
    keep_from = _id_at(client, key, length - maxlen)
    needed = oldest_needed(client, key)
    if needed is not None and streams.compare_ids(needed, keep_from) < 0:
        keep_from = needed  # a group still needs older entries: keep them
    dropped = 0
    if length > hard:
        # Over the hard cap: trim to it even past what groups need. Loud, counted.
        hard_from = _id_at(client, key, length - hard)
        if streams.compare_ids(hard_from, keep_from) > 0:
            dropped = streams.count_range(client, key, keep_from, f"({hard_from}")
            keep_from = hard_from
            client.hincrby(dropped_key(), topic, dropped)
            log.error(
                "stream %s over its hard cap (%d > %d): dropped %d events not yet consumed",
                topic,
                length,
                hard,
                dropped,
            )
    trimmed = client.xtrim(key, minid=keep_from, approximate=False)
    return TrimResult(topic, trimmed, dropped)


def _id_at(client: redis.Redis, key: str, index: int) -> str:
    """The id of the entry at 0-based position ``index`` from the oldest."""
    start, remaining = "-", index
    while True:
        page = client.xrange(key, min=start, max="+", count=min(remaining + 1, 10_000))
        if remaining < len(page):
            return streams.decode(page[remaining][0])
        remaining -= len(page)
        start = f"({streams.decode(page[-1][0])}"


def trim_all(client: redis.Redis, topics: list[str]) -> list[TrimResult]:
    return [trim_topic(client, topic) for topic in topics]
