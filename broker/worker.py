"""The worker loop of one subscriber: read its consumer groups, apply, acknowledge.

Guarantees:
- An entry is acknowledged only after its effect is committed (``Processor.commit``), so a worker
  killed at any point loses nothing: its unacknowledged entries stay in the group's pending list
  and another worker reclaims them (XAUTOCLAIM) once idle for ``CLAIM_IDLE_MS``.
- A failing entry is retried with exponential back-off while the entries behind it go on; after
  ``max_attempts`` it is dead-lettered. Attempts are counted in Redis, so a crash does not reset
  them.
- Outages of Redis or the database are waited out (back-off, not counted as attempts); groups
  that vanished with Redis' data are created again where the ledger stopped, never at "now"
  (broker/groups.py), and the relay is asked to republish what was lost (broker/loss.py).
- SIGTERM/SIGINT (the ``stop`` event) lets the entry in hand finish and be acknowledged.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import socket
import threading
import time
import uuid

import redis
from django.conf import settings
from django.db import connection

from broker import groups, loss, streams
from broker.processing import TRANSIENT, BadEntry, Entry, Processor, parse
from broker.registry import Subscriber
from contract.events import stream_key
from infra.redis_client import blocking_client, follow_primary

log = logging.getLogger("parley.broker")


class Worker:
    def __init__(self, sub: Subscriber, *, stop: threading.Event, consumer: str | None = None):
        conf = settings.PARLEY_BROKER
        self.sub = sub
        self.stop = stop
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.batch = conf["BATCH"]
        self.block_ms = conf["BLOCK_MS"]
        self.linger = conf["LINGER_MS"] / 1000
        self.claim_idle_ms = conf["CLAIM_IDLE_MS"]
        self.retry_base = conf["RETRY_BASE_SECONDS"]
        self.redis = blocking_client()
        self.processor = Processor(sub, self.redis, worker=self.consumer)
        self.topic_of = {stream_key(t): t for t in sub.topics}
        self.retries: list[tuple[float, str, str]] = []  # (due, topic, stream id)
        self.next_reclaim = 0.0
        self.next_heartbeat = 0.0
        self.marker = loss.MarkerWatch()

    # --- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        log.info("%s: worker %s started on %s", self.sub.name, self.consumer, self.sub.topics)
        backoff = 0.0
        while not self.stop.is_set():
            try:
                if backoff:
                    self.ensure_groups()
                self.step()
                if backoff:
                    log.warning("%s: back after an outage", self.sub.name)
                backoff = 0.0
            except TRANSIENT as exc:
                if not isinstance(exc, redis.RedisError):
                    # Django drops a connection whose rollback failed, but not one that broke
                    # outside a transaction: drop it here so the next round opens a new one.
                    connection.close()
                if not backoff:
                    log.warning("%s: waiting out an outage: %r", self.sub.name, exc)
                backoff = min(5.0, max(0.2, backoff * 2))
                self.stop.wait(backoff)
        self._deregister()
        log.info("%s: worker %s stopped", self.sub.name, self.consumer)

    def step(self) -> None:
        """One round: heartbeat, reclaim the abandoned, retry the due, read what is new."""
        now = time.monotonic()
        if now >= self.next_heartbeat:
            self._heartbeat()
            self.next_heartbeat = now + 2
        if now >= self.next_reclaim:
            self.reclaim()
            self.next_reclaim = now + self.claim_idle_ms / 2000
        self.retry_due()
        block = self.block_ms
        if self.retries:
            block = max(1, min(block, int((self.retries[0][0] - time.monotonic()) * 1000)))
        try:
            response = self.redis.xreadgroup(
                self.sub.group,
                self.consumer,
                {key: ">" for key in self.topic_of},
                count=self.batch,
                block=block,
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_groups()  # Redis lost our groups
            return
        read = 0
        for key, entries in response or []:
            self.process(self.topic_of[streams.decode(key)], entries)
            read += len(entries)
        if 0 < read < self.batch and self.linger:
            # A trickle: let the next events gather instead of paying a transaction, an XACK
            # and a round trip per event (at 20 events/s that was ~6 ms of CPU per event).
            # Effects lag by at most LINGER_MS; an idle worker still blocks in XREADGROUP.
            self.stop.wait(self.linger)

    # --- applying entries -------------------------------------------------------------------------
    def process(self, topic: str, raw_entries: list) -> None:
        parsed = [parse(topic, stream_id, fields) for stream_id, fields in raw_entries]
        for bad in (p for p in parsed if isinstance(p, BadEntry)):
            self.processor.dead_letter(bad, error=bad.error, attempts=1)
        entries = [p for p in parsed if isinstance(p, Entry)]
        if not entries:
            return
        # One transaction for the batch; a refused event is isolated (savepoints) so the others
        # commit and are acknowledged first. Outages (TRANSIENT) propagate: nothing is acked.
        done, failures = self.processor.commit_isolating(entries)
        self.processor.ack(done)
        for entry, exc in failures:
            self._failed(entry, exc)

    def _failed(self, entry: Entry, exc: Exception) -> None:
        attempts = self.processor.record_failure(entry, exc)
        if attempts is not None:
            delay = min(self.claim_idle_ms / 2000, self.retry_base * 2 ** (attempts - 1))
            heapq.heappush(self.retries, (time.monotonic() + delay, entry.topic, entry.stream_id))

    def retry_due(self) -> None:
        while self.retries and self.retries[0][0] <= time.monotonic():
            _, topic, stream_id = heapq.heappop(self.retries)
            claimed = self.redis.xclaim(
                stream_key(topic), self.sub.group, self.consumer, 0, [stream_id]
            )
            # Empty if another worker took it meanwhile, or the entry was acknowledged.
            entries = [(sid, fields) for sid, fields in claimed if fields]
            if entries:
                self.process(topic, entries)

    def reclaim(self) -> None:
        """Take over entries other (dead) workers left unacknowledged for too long."""
        for key, topic in self.topic_of.items():
            start = "0-0"
            while not self.stop.is_set():
                result = self.redis.xautoclaim(
                    key,
                    self.sub.group,
                    self.consumer,
                    self.claim_idle_ms,
                    start_id=start,
                    count=self.batch,
                )
                start, entries = streams.decode(result[0]), result[1]
                entries = [(sid, fields) for sid, fields in entries if fields]
                if entries:
                    log.warning(
                        "%s: reclaimed %d abandoned entries of %s",
                        self.sub.name,
                        len(entries),
                        topic,
                    )
                    self.process(topic, entries)
                if start == "0-0":
                    break

    def ensure_groups(self) -> None:
        """Create missing groups; one that had existed means Redis lost data: ask for a repair."""
        for created in groups.ensure_groups(self.redis, [self.sub]):
            if created.recreated:
                log.warning(
                    "%s: group on %s was gone, created again at %s (the ledger's last event)",
                    self.sub.name,
                    created.topic,
                    created.start,
                )
                loss.request_repair(
                    f"group {self.sub.group} of {created.topic} is gone", process="worker"
                )

    # --- liveness -------------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        follow_primary(self.redis)  # a Sentinel failover: read from the new primary
        now = time.time()
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": now}
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(streams.worker_key(self.sub.name, self.consumer), json.dumps(info), ex=10)
        pipe.hset(streams.workers_seen_key(), self.sub.name, repr(now))  # for /readyz
        pipe.get(loss.marker_key())
        marker = pipe.execute()[-1]
        reason = self.marker.changed(marker)
        if reason:
            loss.report(reason, process="worker")

    def _deregister(self) -> None:
        try:
            self.redis.delete(streams.worker_key(self.sub.name, self.consumer))
        except redis.RedisError:
            pass
