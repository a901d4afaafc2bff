"""The relay and a subscriber worker, as real processes, live through a Redis restart and a
database error (PostgreSQL: their connections terminated; SQLite: the database locked) and go on
publishing and processing: nothing lost, nothing doubled, both still running."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
from django.db import connection
from django.test import override_settings
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from broker.models import ProcessedEvent
from chat.models import Message, OutboxEvent
from contract.events import TOPIC_MESSAGE
from tests.support.procs import CHILD_APPNAME, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(90)]

# "database is locked" after 0.5 s instead of 20 (SQLite only).
FAST_LOCK_TIMEOUT = {"PARLEY_SQLITE_TIMEOUT": "0.5"}


def processed_seqs() -> list[int]:
    seq_of = dict(OutboxEvent.objects.values_list("event_id", "seq"))
    rows = ProcessedEvent.objects.filter(subscriber="recorder", topic=TOPIC_MESSAGE).order_by("pk")
    return [seq_of[r.event_id] for r in rows]


@contextlib.contextmanager
def database_error():
    """Make the other processes' next database statement fail, until the block ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                [CHILD_APPNAME],  # the relay's and the worker's, not this process' own
            )
            assert cursor.fetchone()[0] >= 1, "no other connection to terminate"
        yield
        return
    lock = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # writers now fail with "database is locked"
        yield
    finally:
        lock.close()


def relay_errors(metrics_dir) -> dict[str, float]:
    """The relay's ``parley_relay_errors_total`` by source, read from its metrics files."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    return {
        source: registry.get_sample_value(
            "parley_relay_errors_total", {"path": "sweep", "error": source}
        )
        or 0
        for source in ("redis", "database")
    }


def test_relay_and_worker_survive_redis_and_database_outages(
    processes, private_redis, lobby, alice, tmp_path
):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    relay = processes.relay(
        redis_url=private_redis.url,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        **FAST_LOCK_TIMEOUT,
    )
    worker = processes.worker("recorder", redis_url=private_redis.url, **FAST_LOCK_TIMEOUT)
    with override_settings(REDIS_URL=private_redis.url), processes.explain():
        Message.objects.create(room=lobby, author=alice, body="before")
        wait_until(lambda: processed_seqs() == [1], what="the first event processed")

        private_redis.stop()
        Message.objects.create(room=lobby, author=alice, body="during")  # waits in the outbox
        wait_until(
            lambda: "redis unreachable" in relay.output().lower(), what="the relay sees Redis go"
        )

        with database_error():
            private_redis.start()  # empty: the stream and groups are gone
            # SQLite: the relay publishes, then cannot mark the row; PostgreSQL: its connection
            # is gone. Either way it logs, waits and tries again instead of exiting.
            wait_until(
                lambda: "database unreachable" in relay.output(),
                what="the relay sees the database error",
            )
            assert relay.proc.poll() is None, "the relay exited on a database error"

        wait_until(lambda: processed_seqs() == [1, 2], what="the event written during the outage")
        Message.objects.create(room=lobby, author=alice, body="after")
        wait_until(lambda: processed_seqs() == [1, 2, 3], what="an event after the outages")
        assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
        wait_until(lambda: "relay back after" in relay.output(), what="the relay's recovery log")
        assert relay.proc.poll() is None and worker.proc.poll() is None
        errors = relay_errors(metrics_dir)
        assert errors["redis"] >= 1 and errors["database"] >= 1, errors
