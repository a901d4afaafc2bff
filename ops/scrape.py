"""What ``GET /metrics`` answers: the processes' metrics (ops.metrics) plus the state read at
scrape time from the database and Redis (outbox backlog, each subscriber's progress)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from django.db import connection
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from broker import registry as subscribers
from broker.stats import subscriber_stats
from chat import relay
from infra.redis_client import get_redis
from ops import health

log = logging.getLogger("parley.ops")


class StateCollector:
    """Gauges of shared state, read once per scrape (a few queries and Redis calls per
    subscriber). A source that is down is reported as ``parley_state_up{source=...} 0``."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "parley_state_up", "Whether a source could be read.", labels=["source"]
        )
        for source, read in (("database", self._outbox), ("subscribers", self._subscribers)):
            try:
                families = list(read())  # all or nothing: no half-read source
            except Exception as exc:
                log.warning("metrics: %s state unreadable: %r", source, exc)
                up.add_metric([source], 0)
            else:
                up.add_metric([source], 1)
                yield from families
        yield up

    @staticmethod
    def _outbox() -> Iterator[Metric]:
        age = health.oldest_pending_age(time.time())
        yield GaugeMetricFamily(
            "parley_outbox_pending", "Outbox events not yet on Redis.", value=relay.pending_count()
        )
        yield GaugeMetricFamily(
            "parley_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox event not yet on Redis (0: none pending).",
            value=age or 0.0,
        )

    @staticmethod
    def _subscribers() -> Iterator[Metric]:
        labels = ["subscriber"]
        lag = GaugeMetricFamily("parley_subscriber_lag", "Events not yet processed.", labels=labels)
        pending = GaugeMetricFamily(
            "parley_subscriber_pending", "Events delivered, not yet acknowledged.", labels=labels
        )
        dead = GaugeMetricFamily(
            "parley_subscriber_dead", "Dead letters not redriven.", labels=labels
        )
        workers = GaugeMetricFamily("parley_subscriber_workers", "Live workers.", labels=labels)
        processed = CounterMetricFamily(
            "parley_subscriber_processed", "Events processed (the ledger).", labels=labels
        )
        republished = CounterMetricFamily(
            "parley_subscriber_republished",
            "Events republished for it after Redis lost them (chat/repair.py).",
            labels=labels,
        )
        client = get_redis()
        for name, sub in subscribers.subscribers().items():
            stats = subscriber_stats(client, sub)
            lag.add_metric([name], stats["lag"])
            pending.add_metric([name], stats["pending"])
            dead.add_metric([name], stats["dead"])
            workers.add_metric([name], len(stats["workers"]))
            processed.add_metric([name], stats["processed"])
            republished.add_metric([name], stats["republished"])
        yield from (lag, pending, dead, workers, processed, republished)


def render() -> bytes:
    """The Prometheus text exposition of all processes' metrics and the shared state."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector())
    try:
        return generate_latest(processes) + generate_latest(state)
    finally:
        connection.close_if_unusable_or_obsolete()
