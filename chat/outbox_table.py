"""The outbox's table: ``OutboxEvent``, one row per event, written in the transaction of the
change it describes (``chat.outbox.record``) and marked published by the relay (``chat.relay``).

Its own module so that the models, ``outbox.record`` and the relay all import it and none of them
imports another in a circle (models -> outbox -> relay -> this table).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class OutboxEvent(models.Model):
    """An event written in the same transaction as the change it describes.

    ``published_at`` is set once the event is on Redis (the room's channel-layer group and the
    topic's stream). Rows still unpublished are what the relay re-sends after a Redis outage.
    """

    # Position: the order events were recorded in (per room it is also seq order).
    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    topic = models.CharField(max_length=64)
    type = models.CharField(max_length=64)
    # No index of its own: ``outbox_pending_by_room`` below serves the per-post lookup, and
    # with a plain room index beside it SQLite's planner chose the plain one and scanned the
    # room's whole published history on every post.
    room = models.ForeignKey(
        "chat.Room", null=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    seq = models.PositiveBigIntegerField(null=True)
    # The room change number, for message events: the publish guard orders and deduplicates
    # by it (an edit keeps its message's seq but takes a new change number).
    change = models.PositiveBigIntegerField(null=True)
    # The whole event exactly as published (see contract.events.Event).
    event = models.JSONField()
    created_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["room", "id"],
                condition=Q(published_at__isnull=True),
                name="outbox_pending_by_room",
            ),
            # The relay's sweep: everything pending, oldest first, without reading the
            # published history (a scan of the whole table otherwise).
            models.Index(
                fields=["id"], condition=Q(published_at__isnull=True), name="outbox_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
