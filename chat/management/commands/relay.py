"""``manage.py relay``: publish outbox events that the after-commit fast path could not.

This is the recovery path after a Redis outage; normal delivery never waits for it. It sweeps
the outbox every PARLEY["RELAY_SWEEP_SECONDS"] (one indexed query when idle) and publishes the
pending rows oldest first, so each room's events reach Redis in seq order. Once a minute it
deletes rows published more than PARLEY["OUTBOX_RETENTION_HOURS"] ago, creates missing
subscriber groups and trims the topic streams (broker/retention.py).
"""

import logging
import signal
import threading
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.core.management.base import BaseCommand

from broker import registry, retention, streams
from chat import events, relay
from config.redis_client import get_redis

log = logging.getLogger("parley.relay")


class Command(BaseCommand):
    help = "Publish pending outbox events to Redis (recovery after Redis outages)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="one sweep, then exit")

    def handle(self, *args, once: bool = False, **options) -> None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        interval = settings.PARLEY["RELAY_SWEEP_SECONDS"]
        grace = settings.PARLEY["RELAY_GRACE_SECONDS"]
        keep = timedelta(hours=settings.PARLEY["OUTBOX_RETENTION_HOURS"])
        next_maintenance = 0.0
        down = False
        log.info("relay started, sweeping every %.1fs", interval)
        while not stop.is_set():
            try:
                published = relay.flush_pending(older_than=0 if once else grace)
            except redis.RedisError as exc:
                if not down:
                    log.warning("Redis unreachable, %d events wait: %s", relay.pending_count(), exc)
                down = True
            else:
                if down or published:
                    log.info("published %d pending events", published)
                down = False
            if once:
                return
            if time.monotonic() >= next_maintenance:
                self._maintain(keep)
                next_maintenance = time.monotonic() + 60
            stop.wait(interval)

    @staticmethod
    def _maintain(keep: timedelta) -> None:
        """Once a minute: prune the outbox, make sure every registered subscriber has its groups
        (so events wait for a subscriber whose worker is not running yet), trim the streams."""
        relay.prune_published(older_than=keep)
        try:
            client = get_redis()
            streams.ensure_groups(client, list(registry.subscribers().values()))
            for result in retention.trim_all(client, list(events.TOPICS)):
                if result.trimmed:
                    log.info("trimmed %d entries of %s", result.trimmed, result.topic)
        except redis.RedisError as exc:
            log.warning("stream maintenance skipped, Redis unreachable: %s", exc)
