"""Rooms, memberships, messages, and the transactional outbox of events."""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, models, transaction
from django.db.models import Q
from django.db.models.functions import Lower

from chat.outbox_table import OutboxEvent  # noqa: F401 - the app's models, for imports
from chat.validation import check_body, validate_body
from database import sql


class Room(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    is_private = models.BooleanField(default=False)
    # Seq of the room's newest message; the next message takes last_seq + 1.
    last_seq = models.PositiveBigIntegerField(default=0, editable=False)
    # Number of the room's newest message change (create, edit or delete), counted like seq:
    # sockets and clients detect a missed edit or delete by a gap in it.
    last_change = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            # "Lobby" and "lobby" are one address to people: one room (chat/migrations/0005).
            models.UniqueConstraint(Lower("slug"), name="room_slug_unique_ci"),
        ]

    def __str__(self) -> str:
        return self.slug

    def save(self, *args, **kwargs) -> None:
        """Save; a room that exists never has its counters written from here.

        ``last_seq`` and ``last_change`` move only through ``allocate`` (under the row lock):
        an instance's copy of them is stale once anything was posted, and writing it back
        would hand out a seq or change number twice."""
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in ("last_seq", "last_change")
            ]
        super().save(*args, **kwargs)

    @classmethod
    def allocate(cls, room_id: int, *, new_message: bool, count: int = 1) -> tuple[int, int]:
        """Take the next change number (and, for a new message, the next seq) of a room;
        ``count`` new messages take ``count`` of each.

        Must run inside the transaction that writes the change: the UPDATE holds the room's row
        lock until commit, so concurrent writers (threads or processes, PostgreSQL or SQLite)
        queue and a rollback gives the numbers back. Seqs and change numbers are therefore
        gapless and unique, and a room's changes commit in their order. Returns (seq, change),
        the last ones taken; seq is the room's newest seq when ``new_message`` is false.
        """
        # One statement (UPDATE ... RETURNING), written out: it runs for every post.
        row = sql.allocate(room_id, count, new_messages=new_message)
        if row is None:
            raise cls.DoesNotExist(f"room {room_id} does not exist")
        return row


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member"
        MODERATOR = "moderator"
        OWNER = "owner"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    # Highest seq the user has read in this room.
    last_read_seq = models.PositiveBigIntegerField(default=0)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "room"], name="membership_unique_user_room")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.room} ({self.role})"


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="messages"
    )
    body = models.TextField(validators=[validate_body])
    seq = models.PositiveBigIntegerField(editable=False)
    # The room change number of this message's latest change (see Room.last_change).
    change = models.PositiveBigIntegerField(default=0, editable=False)
    # The sender's idempotency key: the same (author, client_id) never makes a second message.
    client_id = models.UUIDField(null=True, blank=True, editable=False)
    # With a client_id: the fingerprint of the request that created the message (see
    # chat.idempotency.request_fingerprint), so a retry can be told from a key reused for another
    # message even after an edit or delete. Null (not "": unknown, for posts without a
    # client_id and rows older than the field) also keeps the column free on existing tables.
    request_digest = models.CharField(  # noqa: DJ001
        max_length=32, null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A deleted message stays as a tombstone (empty body) so that seqs stay gapless.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["room", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="message_unique_room_seq"),
            models.UniqueConstraint(fields=["room", "change"], name="message_unique_room_change"),
            models.UniqueConstraint(
                fields=["author", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_unique_author_client_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.room}#{self.seq}"

    def save(self, *args, **kwargs) -> None:
        """Save; a new message has its body checked (ActionError, as a post would be refused) and
        is written by ``create_batch`` (a batch of one): it gets its seq and change number and
        its ``message.created`` event.

        This is the safety net that makes *every* insert publish — the post action, the admin,
        a shell's ``Message.objects.create()`` — because the event is written to the outbox in
        the same transaction as the row and published after commit. ``bulk_create`` and raw SQL
        bypass ``save()`` and therefore publish nothing: use ``chat.actions.post_message``.
        Saving an existing message writes only the row (edits and deletes: chat.actions).
        """
        if not self._state.adding:
            super().save(*args, **kwargs)
            return
        if kwargs.get("using", DEFAULT_DB_ALIAS) != DEFAULT_DB_ALIAS:
            raise ValueError("messages are written to the default database")
        check_body(self.body)
        Message.create_batch([self])

    @classmethod
    def create_batch(cls, messages: list[Message]) -> list[Message]:
        """Insert new messages of one room, in their order: the one write of new messages.

        In one transaction: the room hands out the next seqs and change numbers
        (``Room.allocate``), the rows are written with one INSERT and their ``message.created``
        events with another (``outbox.record``, published after commit). Raises IntegrityError
        (nothing written, the messages left unsaved) if an (author, client_id) pair already
        exists. Sends no model signals. The bodies are the caller's to check
        (``chat.validation.check_body``): the post action and ``save()`` do."""
        from chat import outbox  # not at load: it brings the relay (Redis, metrics)
        from contract import events

        if not messages:
            return messages
        room_id = messages[0].room_id
        if any(m.room_id != room_id or not m._state.adding for m in messages):
            raise ValueError("a batch is new messages of one room")
        if any(m.seq is not None for m in messages):
            raise ValueError("a new message's seq is assigned by its room; leave it unset")
        with transaction.atomic():
            try:
                last_seq, last_change = Room.allocate(
                    room_id, new_message=True, count=len(messages)
                )
                first_seq = last_seq - len(messages) + 1
                first_change = last_change - len(messages) + 1
                for i, message in enumerate(messages):
                    message.seq, message.change = first_seq + i, first_change + i
                sql.insert_instances(messages)
                outbox.record(*(events.message_created(m) for m in messages), room_id=room_id)
            except BaseException:
                for message in messages:  # rolled back: the messages may be written again
                    message.pk, message.seq, message.change = None, None, 0
                    message._state.adding = True
                raise
        return messages

    def delete(self, *args, **kwargs):
        """Messages are never removed (seqs stay gapless): use chat.actions.delete_message."""
        raise TypeError("a message is deleted with chat.actions.delete_message (a tombstone)")


class RoomEvent(models.Model):
    """A change of a room that is not a message (chat.room_events): a member joined or left,
    the room was renamed or its privacy changed. It holds the room change number it took and
    what its WebSocket frame says, so a resume replays it (kept as long as the room)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+", db_index=False)
    change = models.PositiveBigIntegerField()
    # The frame's type (member.joined, member.left, room.updated) and its other fields.
    type = models.CharField(max_length=32)
    data = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Also the index of the replay's query: a room's events after a change, in order.
            models.UniqueConstraint(fields=["room", "change"], name="room_event_unique_change")
        ]

    def __str__(self) -> str:
        return f"{self.room_id}@{self.change} {self.type}"


class Mention(models.Model):
    """``@username`` in a message, for that user. Made by the mentions subscriber."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mentions"
    )
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mentions")
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "message"], name="mention_once_per_message")
        ]

    def __str__(self) -> str:
        return f"@{self.user} in {self.message}"
