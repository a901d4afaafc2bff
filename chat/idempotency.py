"""Client ids (the WebSocket ``client_id``, REST's ``Idempotency-Key``): finding the message a
retry already created, and telling a retry from a key reused for another message.

One namespace per user, whatever the transport: a key is a UUID (``client_id_of_key``: REST's
``Idempotency-Key`` holding a UUID is that UUID, so a post sent over the socket may be retried
over REST and back; any other key text is mapped to a UUID by ``uuid5(KEY_NAMESPACE, key)``).
Keys of different users never meet.

A message posted with a client_id stores the fingerprint of the request that created it (its
room and body, ``Message.request_digest``). A later request with the same client_id is a retry
only if its fingerprint is the same: it then answers the message as it now is (even edited or
deleted); otherwise it is refused with ``client_id_reused`` (REST: ``idempotency_key_reused``)
and changes nothing. A key is remembered as long as its message exists — there is no expiry —
and forgotten only when its author's account is deleted (``chat.departure``).
"""

from __future__ import annotations

import hashlib
import uuid

from django.contrib.auth.models import AbstractBaseUser

from chat.errors import ActionError, Refused
from chat.models import Message, Room
from database import sql

# uuid5 namespace of Idempotency-Key values that are not UUIDs (fixed: changing it would make
# retries of earlier posts new messages).
KEY_NAMESPACE = uuid.UUID("8f7c0a58-3b1e-4e0b-9d7f-5a1d2c3b4e5f")
MAX_KEY_LENGTH = 200


def client_id_of_key(key: str) -> uuid.UUID:
    """The client_id of REST's ``Idempotency-Key``: the UUID it holds (the WebSocket's
    ``client_id`` of the same post), else ``uuid5(KEY_NAMESPACE, key)``. Refused with
    ``invalid_idempotency_key`` unless 1 to MAX_KEY_LENGTH characters."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise Refused(
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters",
        )
    try:
        return uuid.UUID(key)
    except ValueError:
        return uuid.uuid5(KEY_NAMESPACE, key)


def request_fingerprint(*, room: Room, body: str) -> str:
    """What makes two posts with one client_id the same request: the room and the body."""
    return hashlib.blake2b(f"{room.pk}:{body}".encode(), digest_size=16).hexdigest()


def check_retry(existing: Message, *, room: Room, body: object) -> None:
    """``existing`` was created with the client_id a new request carries: the request must be
    a retry of it (same room, same body), else ActionError ``client_id_reused`` (a client
    reusing its key for another message would otherwise be told its new message was posted).
    Messages stored before fingerprints existed are checked by room only."""
    if existing.room_id != room.pk:
        raise ActionError("client_id_reused", "this client_id was used for another room")
    digest = existing.request_digest
    if digest is not None and (
        not isinstance(body, str) or digest != request_fingerprint(room=room, body=body)
    ):
        raise ActionError("client_id_reused", "this client_id was used for another message")


def by_client_id(
    *, author: AbstractBaseUser, client_id: uuid.UUID, room: Room, body: str
) -> Message | None:
    """The message ``author`` created with ``client_id``, if the request is a retry of it
    (``check_retry``); None if there is none."""
    existing = (
        Message.objects.select_related("room", "author")
        .filter(author=author, client_id=client_id)
        .first()
    )
    if existing is not None:
        check_retry(existing, room=room, body=body)
    return existing


def existing_client_ids(
    wanted: set[tuple[int, uuid.UUID]],
) -> dict[tuple[int, uuid.UUID], Message]:
    """Messages already created for these (author id, client_id) pairs (retries), in one
    query; not checked (``check_retry``)."""
    if not wanted:
        return {}
    # Nearly every post is new: ask for ids only, with a statement written once (the ORM
    # took ten times longer to build this query than the database to run it); load retries.
    ids = sql.messages_with_client_ids(wanted)
    if not ids:
        return {}
    found = Message.objects.select_related("room", "author").filter(pk__in=ids)
    return {(m.author_id, m.client_id): m for m in found}
