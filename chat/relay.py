"""Publishing outbox events to Redis: the fast path after commit and the recovery relay.

One Lua script puts an event on Redis atomically: XADD to the topic's stream and PUBLISH to the
room's channel-layer group, guarded by the highest change number already published for that
room, so a re-send (two publishers racing, or the relay retrying after a half-finished attempt)
is dropped instead of duplicated.

Ordering: every publisher publishes *all* pending events of a room, oldest first, and marks a row
published only after Redis accepted it. Whoever publishes change N has therefore already
published (or seen published) every change below N, so a room's events reach Redis in order.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import redis
from channels.layers import get_channel_layer
from django.db import DatabaseError
from django.db.models import QuerySet
from django.utils import timezone

from chat.outbox_table import OutboxEvent
from contract import events, redis_keys
from database import sql
from infra.redis_client import get_redis
from ops import metrics

log = logging.getLogger("parley.relay")


def published_key(stream: str) -> str:
    """Highest change number published per room (hash field = room id) on ``stream``.

    Tagged with the stream's name, so the publish script's two keys share one Cluster slot.
    Only chat.message events carry change numbers, so a guard per stream guards what the one
    ``parley:published-change`` hash before it did; an upgrade starts with an empty guard, as
    after a Redis loss: at most a duplicate, which ledgers and sockets' change checks drop."""
    return redis_keys.tagged(stream, "published-change")


_PUBLISH = """
if ARGV[2] ~= '' then
  local last = redis.call('HGET', KEYS[2], ARGV[1])
  if last and tonumber(ARGV[2]) <= tonumber(last) then
    return 0
  end
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
redis.call('XADD', KEYS[1], '*', 'id', ARGV[5], 'type', ARGV[6], 'event', ARGV[7])
if ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return 1
"""

BATCH = 200


_SHA = hashlib.sha1(_PUBLISH.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


def _execute(client: redis.Redis, calls: list[tuple[list, list]]) -> list:
    """Run the publish script once per (keys, args), pipelined, in one round trip.

    EVALSHA directly: redis-py's registered scripts ask SCRIPT EXISTS before every pipeline,
    a second round trip per batch. After a Redis restart the script is unknown: load it and
    run the calls again (the script's change guard makes the repeat harmless).
    """
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(_SHA, len(keys), *keys, *args)
        try:
            return pipe.execute()
        except redis.exceptions.NoScriptError:
            if attempt == 2:
                raise
            client.script_load(_PUBLISH)
    raise AssertionError("unreachable")


def publish_rows(rows: list[OutboxEvent], client: redis.Redis | None = None) -> int:
    """Put ``rows`` (oldest first) on Redis in one round trip; return how many were new.

    Raises redis.RedisError if Redis is unreachable; nothing is marked then.
    """
    if not rows:
        return 0
    client = client or get_redis()
    layer = get_channel_layer()
    calls = []
    for row in rows:
        event = row.event
        stream = events.stream_key(row.topic)
        group_channel, live = _live_message(row)
        layer_message = layer.serialize(live) if live is not None else ""
        group_channel = layer.group_channel_name(group_channel) if live is not None else ""
        calls.append(
            (
                [stream, published_key(stream)],
                [
                    row.room_id if row.room_id is not None else "",
                    row.change if row.change is not None else "",
                    group_channel,
                    layer_message,
                    str(row.event_id),
                    row.type,
                    events.dumps(event),
                ],
            )
        )
    results = _execute(client, calls)
    sql.mark_published([r.pk for r in rows], timezone.now())
    return sum(1 for r in results if r == 1)


def _live_message(row: OutboxEvent) -> tuple[str, dict | None]:
    """The channel-layer group and message that carry ``row`` to open sockets, if any: a
    message event goes to its room's group with its client frame made once; access.revoked to
    the group every server process listens on (chat.access)."""
    event = row.event
    if row.type == events.ACCESS_REVOKED:
        payload = event["payload"]
        return events.ACCESS_GROUP, {
            "type": "chat.access",
            "user_id": payload["user_id"],
            "room_id": payload["room_id"],
            "credential": payload["credential"],
        }
    frame = events.client_frame(event)
    if row.room_id is None or frame is None:
        return "", None
    return events.room_group(row.room_id), {
        "type": "chat.event",
        "event": row.type,
        "room": event["room"],
        "room_id": row.room_id,
        "seq": row.seq,
        "change": row.change,
        "frame": frame,
        "ts": row.created_at.timestamp(),  # commit time, for the push latency
    }


def flush_room(room_id: int | None, written: list[OutboxEvent] | None = None) -> int:
    """Publish every pending event of one room (or of no room), in order.

    ``written``: rows the caller has just committed, still in memory. When they are all that
    is pending, they are published as they are, without reading them back."""
    if written:
        if sql.outbox_pending_ids(room_id, len(written) + 1) == [row.pk for row in written]:
            return publish_rows(written)
    return _flush(OutboxEvent.objects.filter(room_id=room_id))


def flush_after_commit(room_id: int | None, written: list[OutboxEvent] | None = None) -> None:
    """The fast path, run by ``transaction.on_commit``: publish now, or leave it to the relay.

    Never raises: the caller's change is committed already, and a socket's connect or a post
    must not fail because publishing it did. Whatever was not marked published stays pending
    and the relay's sweep publishes it (a row Redis already has is dropped there by the change
    guard, or arrives twice: subscribers and sockets drop repeats)."""
    try:
        published = flush_room(room_id, written)
    except redis.RedisError as exc:
        metrics.RELAY_ERRORS.labels("commit", "redis").inc()
        log.warning("Redis unreachable after commit, the relay will publish: %s", exc)
    except DatabaseError as exc:
        metrics.RELAY_ERRORS.labels("commit", "database").inc()
        log.warning("outbox not marked after commit, the relay will publish: %s", exc)
    except Exception:
        metrics.RELAY_ERRORS.labels("commit", "other").inc()
        log.exception("publishing after commit failed, the relay will publish")
    else:
        metrics.RELAY_PUBLISHED.labels("commit").inc(published)


def flush_pending(*, older_than: float = 0.0) -> int:
    """The relay's sweep: publish everything still pending (oldest first). Raises RedisError."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return _flush(OutboxEvent.objects.filter(created_at__lte=cutoff))


def _flush(rows: QuerySet[OutboxEvent]) -> int:
    """The one flush: publish the pending ones of ``rows``, oldest first, a page at a time;
    return how many were new on Redis."""
    pending = rows.filter(published_at__isnull=True).order_by("id")
    published = 0
    while True:
        page = list(pending[:BATCH])
        published += publish_rows(page)
        if len(page) < BATCH:
            return published


def pending_count() -> int:
    return OutboxEvent.objects.filter(published_at__isnull=True).count()
