"""``manage.py relay``: publish outbox events that the after-commit fast path could not.

This is the recovery path after a Redis outage; normal delivery never waits for it. It sweeps
the outbox every PARLEY["RELAY_SWEEP_SECONDS"] (one indexed query when idle) and publishes the
pending rows oldest first, so each room's events reach Redis in seq order. Once a minute it
prunes the outbox (chat/repair.py: rows every started subscriber processed, after
PARLEY["OUTBOX_RETENTION_HOURS"]; any row after OUTBOX_MAX_RETENTION_HOURS), creates missing
subscriber groups and trims the topic streams (broker/retention.py).

Before each sweep it checks that Redis still holds its data (broker/loss.py: one round trip and
one database row); when Redis lost it, it repairs (chat/repair.py) before publishing anything
new: lost groups are created again where their ledgers stopped and the events subscribers had
not processed are republished, oldest first. Every PARLEY["RELAY_RECONCILE_SECONDS"] it also
republishes events a subscriber went past without processing (chat/reconcile.py: writes a
demoted primary accepted and dropped).

Outages do not end it: a Redis or database error is logged once when it starts and once when it
ends, counted (``parley_relay_errors``), and retried with exponential back-off (up to
``MAX_BACKOFF`` seconds); a broken database connection is dropped and opened again. After every
successful sweep it writes its heartbeat for ``/readyz`` (ops/health.py).
"""

import contextlib
import logging
import signal
import threading
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection

from broker import groups, loss, registry, retention
from chat import reconcile, relay, repair
from contract import events
from infra.heap import freeze_startup_heap
from infra.redis_client import get_redis
from ops import health, metrics

log = logging.getLogger("parley.relay")

MAX_BACKOFF = 5.0


class Command(BaseCommand):
    help = "Publish pending outbox events to Redis (recovery after Redis outages)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="one sweep, then exit")

    def handle(self, *args, once: bool = False, **options) -> None:
        freeze_startup_heap()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        interval = settings.PARLEY["RELAY_SWEEP_SECONDS"]
        grace = settings.PARLEY["RELAY_GRACE_SECONDS"]
        keep = timedelta(hours=settings.PARLEY["OUTBOX_RETENTION_HOURS"])
        cap = timedelta(hours=settings.PARLEY["OUTBOX_MAX_RETENTION_HOURS"])
        watch = loss.RelayWatch()
        reconciler = reconcile.Reconciler()
        scanned: dict[str, int] = {}  # prune's progress per subscriber (chat/repair.py)
        every = settings.PARLEY["RELAY_RECONCILE_SECONDS"]
        next_maintenance = next_reconcile = 0.0
        failures = 0
        failing: str | None = None  # what the failed sweeps in a row failed on
        log.info("relay started, sweeping every %.1fs", interval)
        while not stop.is_set():
            try:
                self._check(watch)
                published = relay.flush_pending(older_than=0 if once else grace)
                metrics.RELAY_PUBLISHED.labels("sweep").inc(published)
                health.relay_heartbeat(get_redis())
                if time.monotonic() >= next_reconcile:
                    next_reconcile = time.monotonic() + every
                    self._reconcile(reconciler)
                if time.monotonic() >= next_maintenance:
                    self._maintain(keep, cap, scanned)
                    next_maintenance = time.monotonic() + 60
            except (redis.RedisError, DatabaseError) as exc:
                failures += 1
                failing = self._failed(exc, failing)
            else:
                if failures or published:
                    log.info("published %d pending events", published)
                if failures:
                    log.warning("relay back after %d failed sweeps", failures)
                failures, failing = 0, None
            if once:
                return
            stop.wait(min(MAX_BACKOFF, interval * 2 ** max(0, failures - 1)))

    @staticmethod
    def _failed(exc: Exception, failing: str | None) -> str:
        """Count, and log when an outage starts (or changes source); return its source."""
        source = "redis" if isinstance(exc, redis.RedisError) else "database"
        metrics.RELAY_ERRORS.labels("sweep", source).inc()
        if source == "database":
            connection.close()  # a terminated or broken connection is opened anew next sweep
        if source != failing:
            waiting = ""
            if source == "redis":
                with contextlib.suppress(DatabaseError):
                    waiting = f", {relay.pending_count()} events wait"
            log.warning("%s unreachable%s; retrying with back-off: %s", source, waiting, exc)
        return source

    @staticmethod
    def _reconcile(reconciler: reconcile.Reconciler) -> None:
        """The catch-all round (chat/reconcile.py). Best effort: Redis and database errors are
        the sweep's to retry, but anything else it meets (Redis changing under it) is logged
        and left to the next round instead of stopping the relay's publishing."""
        try:
            reconciler.round(get_redis())
        except (redis.RedisError, DatabaseError):
            raise
        except Exception:
            log.exception("reconciliation round failed; trying again next round")

    @staticmethod
    def _check(watch: loss.RelayWatch) -> None:
        """Repair first if Redis lost its data since the last sweep."""
        client = get_redis()
        reason, requests = watch.check(client)
        if reason:
            repair.repair(client, reason, answers=requests)

    @staticmethod
    def _maintain(keep: timedelta, cap: timedelta, scanned: dict[str, int]) -> None:
        """Once a minute: prune the outbox, make sure every registered subscriber has its groups
        (so events wait for a subscriber whose worker is not running yet), asking for a repair
        when a stream went back or a started subscriber's group is gone, trim the streams."""
        repair.prune(older_than=keep, cap=cap, scanned=scanned)
        client = get_redis()
        subs = list(registry.subscribers().values())
        went_back = loss.streams_went_back(client, subs)  # before the groups are created
        if went_back:
            loss.request_repair(went_back, process="relay")
        for created in groups.ensure_groups(client, subs):
            if created.recreated and not went_back:
                loss.request_repair(
                    f"group {created.subscriber} of {created.topic} is gone", process="relay"
                )
        for result in retention.trim_all(client, list(events.TOPICS)):
            if result.trimmed:
                log.info("trimmed %d entries of %s", result.trimmed, result.topic)
