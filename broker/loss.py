"""Noticing that Redis lost its data, in every process that uses the streams.

Redis may restart empty (no persistence), be flushed, fail over to a replica that had not caught
up, or come back from an older snapshot. The database still holds what matters (the outbox and
each subscriber's ledger), so nothing is lost as long as the loss is noticed and the relay puts
back what the subscribers had not processed (chat/repair.py). The signs:

- the marker key that the relay writes (its token also kept in ``RedisState``) vanished or
  holds another token: a FLUSHALL, a restart without persistence, another Redis;
- Redis' run id or replication id (kept in ``RedisState.server_id``) changed: a restart, or a
  failover (a promotion gives a new replication id), whose data may be older than what was
  acknowledged (a snapshot, a replica behind its primary);
- a stream went back (checked once a minute): it is gone, or its last id is below the last one
  a subscriber's ledger recorded, or a started subscriber's group is missing;
- a worker found its consumer group gone (NOGROUP): it creates it again where its ledger stopped
  (broker/groups.py) and asks the relay for a repair through the database (``request_repair``).

Workers also watch the marker (with their heartbeat) so their log says when Redis lost its data;
only the relay repairs. Each noticing process logs an error and counts
``parley_redis_losses_total{process}``.
"""

from __future__ import annotations

import logging
import uuid

import redis
from django.db.models import F

from broker import streams
from broker.models import ProcessedEvent, RedisState, SubscriberState
from broker.registry import Subscriber
from contract import redis_keys
from contract.events import stream_key
from infra.redis_client import follow_primary
from ops import metrics

log = logging.getLogger("parley.broker")


def marker_key() -> str:
    return redis_keys.key("redis-marker")


def report(reason: str, *, process: str) -> None:
    """Log and count a loss of Redis data that this process noticed."""
    log.error("Redis lost its data (%s); noticed by the %s", reason, process)
    metrics.REDIS_LOSSES.labels(process).inc()


def request_repair(reason: str, *, process: str) -> None:
    """Report a loss and ask the relay to put back what subscribers have not processed."""
    report(reason, process=process)
    state()
    RedisState.objects.filter(pk=1).update(requests=F("requests") + 1, last_loss_reason=reason)


def state() -> RedisState:
    return RedisState.objects.get_or_create(pk=1)[0]


def new_marker(client: redis.Redis) -> str:
    """Write a new marker token to Redis and, with the server's identity, to the database
    (Redis first: a crash in between reads as a loss, so the repair runs again, not never)."""
    token = uuid.uuid4().hex
    client.set(marker_key(), token)
    server_id, _ = _identify(client)
    RedisState.objects.filter(pk=state().pk).update(marker=token, server_id=server_id)
    return token


def _identify(client: redis.Redis) -> tuple[str, str | None]:
    """(``"<run id>/<replication id>"`` of the primary, the marker), in one round trip.

    Raises ConnectionError, after dropping the pool's connections, if the server is a replica:
    a demoted primary after a failover, which still answers reads (a Sentinel client finds the
    new primary when it connects again)."""
    follow_primary(client)
    pipe = client.pipeline(transaction=False)
    pipe.info("server")
    pipe.info("replication")
    pipe.get(marker_key())
    server, replication, marker = pipe.execute()
    if replication.get("role") != "master":
        client.connection_pool.disconnect()
        raise redis.ConnectionError("Redis is a replica now (a failover?): connecting again")
    server_id = f"{server['run_id']}/{replication.get('master_replid', '')}"
    return server_id, streams.decode(marker) if marker is not None else None


class MarkerWatch:
    """What a worker last saw of the marker: tells when it vanished or changed."""

    def __init__(self) -> None:
        self.seen: str | None = None

    def changed(self, marker: bytes | None) -> str | None:
        """The reason to report if ``marker`` (as just read) shows a loss since the last call.

        A vanished marker is reported once; the relay's new one after it is not a new loss."""
        current = streams.decode(marker) if marker is not None else _GONE
        before, self.seen = self.seen, current
        if before is None or before == current or before == _GONE:
            return None
        return "its marker key vanished" if current == _GONE else "its marker key was replaced"


_GONE = ""


class RelayWatch:
    """The relay's check, once per sweep: one round trip to Redis, one row of the database."""

    def check(self, client: redis.Redis) -> tuple[str | None, int]:
        """Return (the loss to repair or None, the repair requests this answers)."""
        server_id, marker = _identify(client)
        known = state()
        if not known.marker:  # the first start: nothing to compare with yet
            if marker is None:
                new_marker(client)
            else:
                RedisState.objects.filter(pk=known.pk).update(marker=marker, server_id=server_id)
            return None, known.requests
        if marker is None:
            return "its marker key vanished", known.requests
        if marker != known.marker:
            return "its marker key was replaced", known.requests
        if known.server_id != server_id:
            # The data may be older than what was acknowledged (a snapshot, a replica behind
            # its primary). Repairing costs copies at worst.
            return "its run id or replication id changed (a restart or a failover)", known.requests
        if known.requests > known.handled:
            return known.last_loss_reason or "a worker asked for a repair", known.requests
        return None, known.requests


def streams_went_back(client: redis.Redis, subs: list[Subscriber]) -> str | None:
    """Why the streams show a loss (one gone, its last id lower than a ledger's, a started
    subscriber's group missing), or None."""
    started = set(
        SubscriberState.objects.filter(started_at__isnull=False).values_list(
            "subscriber", flat=True
        )
    )
    for topic in sorted({t for sub in subs for t in sub.topics}):
        last_processed = (
            ProcessedEvent.objects.filter(topic=topic)
            .order_by("-id")
            .values_list("stream_id", flat=True)
            .first()
        )
        try:
            info = client.xinfo_stream(stream_key(topic))
        except redis.ResponseError:
            if last_processed:
                return f"stream {topic} is gone"
            continue
        last_id = streams.decode(info["last-generated-id"])
        if last_id == "0-0":
            # Created empty with its groups (after a loss already repaired, or before any
            # event): nothing in it to have gone back; a lost group is checked below.
            pass
        elif last_processed and streams.compare_ids(last_id, last_processed) < 0:
            return f"stream {topic} went back to {last_id} (processed up to {last_processed})"
        for sub in subs:
            if sub.name in started and topic in sub.topics:
                if not streams.has_group(client, topic, sub.group):
                    return f"group {sub.group} of {topic} is gone"
    return None
