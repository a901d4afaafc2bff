"""What the broker keeps in the database: the exactly-once ledger, dead letters, and counters."""

from __future__ import annotations

from django.db import models


class ProcessedEvent(models.Model):
    """One row per (subscriber, event) whose effect is committed.

    Written in the same transaction as the handler's effect, so a redelivered event (after a
    crash, a reclaim, or two workers racing) is recognised and acknowledged without running the
    handler again: delivery is at-least-once, the effect exactly-once.
    """

    subscriber = models.CharField(max_length=64)
    event_id = models.UUIDField()
    topic = models.CharField(max_length=64)
    stream_id = models.CharField(max_length=32)
    # The consumer (worker) that committed it, or the command that did ("redrive", "replay").
    worker = models.CharField(max_length=128)
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "event_id"], name="processed_once_per_subscriber"
            )
        ]
        indexes = [models.Index(fields=["subscriber", "processed_at"])]

    def __str__(self) -> str:
        return f"{self.subscriber} {self.event_id}"


class SubscriberState(models.Model):
    """Durable counters per subscriber, updated in the same transaction as each batch."""

    subscriber = models.CharField(max_length=64, unique=True)
    processed = models.PositiveBigIntegerField(default=0)
    last_processed_at = models.DateTimeField(null=True, blank=True)
    last_event_ts = models.CharField(max_length=40, blank=True)
    # When its consumer groups were first created: a "now" subscriber's events are those
    # recorded from then on (broker/groups.py). Null: never started, no group to recreate.
    started_at = models.DateTimeField(null=True, blank=True)
    # Events put on Redis again because Redis lost them before this subscriber processed them.
    republished = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return self.subscriber


class RedisState(models.Model):
    """One row (pk 1): what Parley knows of Redis' memory, to notice when Redis lost it.

    ``marker`` is the token of the marker key the relay wrote (broker/loss.py): when Redis
    no longer holds it, Redis lost its data since. ``requests`` is raised by any process that
    noticed a loss (a consumer group gone); the relay repairs while ``handled`` is behind it.
    """

    marker = models.CharField(max_length=64, blank=True)
    # "<run id>/<replication id>" of the primary last seen: a restart changes the first, a
    # promotion (failover) the second, even back to a server seen before.
    server_id = models.CharField(max_length=100, blank=True)
    requests = models.PositiveBigIntegerField(default=0)
    handled = models.PositiveBigIntegerField(default=0)
    losses = models.PositiveBigIntegerField(default=0)
    republished = models.PositiveBigIntegerField(default=0)
    last_loss_at = models.DateTimeField(null=True, blank=True)
    last_loss_reason = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"Redis state (losses: {self.losses})"


class DeadLetter(models.Model):
    """An event whose handler kept failing: set aside so the events behind it go on."""

    subscriber = models.CharField(max_length=64)
    topic = models.CharField(max_length=64)
    stream_id = models.CharField(max_length=32)
    event_id = models.UUIDField(null=True, blank=True)
    event = models.JSONField(null=True, blank=True)
    raw = models.TextField(blank=True, help_text="The stream entry, when it was not valid JSON")
    error = models.TextField()
    attempts = models.PositiveIntegerField()
    failed_at = models.DateTimeField(auto_now_add=True)
    redriven_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["subscriber", "redriven_at"])]

    def __str__(self) -> str:
        return f"{self.subscriber} {self.topic} {self.stream_id}"
