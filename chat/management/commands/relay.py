"""``manage.py relay``: publish outbox events that the after-commit fast path could not.

This is the recovery path after a Redis outage; normal delivery never waits for it. It sweeps
the outbox every PARLEY["RELAY_SWEEP_SECONDS"] (one indexed query when idle) and publishes the
pending rows oldest first, so each room's events reach Redis in seq order. Once a minute it
deletes rows published more than PARLEY["OUTBOX_RETENTION_HOURS"] ago.
"""

import logging
import signal
import threading
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.core.management.base import BaseCommand

from chat import relay

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
        retention = timedelta(hours=settings.PARLEY["OUTBOX_RETENTION_HOURS"])
        next_prune = 0.0
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
            if time.monotonic() >= next_prune:
                relay.prune_published(older_than=retention)
                next_prune = time.monotonic() + 60
            stop.wait(interval)
