"""Behaviour records and the aggregates the dashboard reads.

Analytics depends on event schemas only (contract.events), never on chat's models: rooms and users
are stored as the slugs and usernames the events carry.
"""

from __future__ import annotations

from django.db import models


class BehaviourRecord(models.Model):
    """Every event analytics received, once (unique on the event id)."""

    event_id = models.UUIDField(unique=True)
    topic = models.CharField(max_length=64)
    type = models.CharField(max_length=64)
    room = models.CharField(max_length=64, blank=True)
    user = models.CharField(max_length=150, blank=True)
    occurred_at = models.DateTimeField()
    processed_at = models.DateTimeField()
    # Event created -> processed by analytics, in milliseconds.
    latency_ms = models.FloatField()
    payload = models.JSONField()

    class Meta:
        indexes = [
            models.Index(fields=["occurred_at"]),
            models.Index(fields=["type", "occurred_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class RoomMinute(models.Model):
    room = models.CharField(max_length=64)
    minute = models.DateTimeField()
    messages = models.PositiveIntegerField(default=0)
    joins = models.PositiveIntegerField(default=0)
    leaves = models.PositiveIntegerField(default=0)
    connects = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "minute"], name="room_minute")]

    def __str__(self) -> str:
        return f"{self.room} {self.minute:%H:%M}"


class UserMinute(models.Model):
    """A user's activity in a minute; the rows of a minute are its active users."""

    user = models.CharField(max_length=150)
    minute = models.DateTimeField()
    messages = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "minute"], name="user_minute")]

    def __str__(self) -> str:
        return f"{self.user} {self.minute:%H:%M}"


class LatencyMinute(models.Model):
    """Push latency (event created -> processed) per minute, with a fine histogram from which
    p50/p95 are computed within 0.5 % (analytics.latency)."""

    minute = models.DateTimeField(unique=True)
    count = models.PositiveIntegerField(default=0)
    total_ms = models.FloatField(default=0)
    max_ms = models.FloatField(default=0)
    # Counts per 1 %-wide log bucket, keyed by the bucket's index (analytics.latency).
    buckets = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"latency {self.minute:%H:%M}"


class ConnectionSession(models.Model):
    """One socket on a room, from user.connected to user.disconnected."""

    session = models.CharField(max_length=64, unique=True)
    user = models.CharField(max_length=150)
    room = models.CharField(max_length=64)
    connected_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return self.session


class ForgottenUser(models.Model):
    """A deleted user's username: analytics shows it as ``shown_as`` in everything that
    happened up to ``forgotten_at`` (events still in flight when the user was deleted too), while
    a new account that later takes the name is counted as itself."""

    username = models.CharField(max_length=150, unique=True)
    shown_as = models.CharField(max_length=150)
    forgotten_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.username} -> {self.shown_as}"
