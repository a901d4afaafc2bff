"""Posting messages: one action for one request or many, for every transport.

``post_messages`` checks each request (body, authorisation, the client_id idempotency key, the
rate limit) and writes each room's new messages with one ``Message.create_batch``; the WebSocket
path hands it what its sockets sent meanwhile (chat/batching.py). ``post_message`` (REST, pages,
commands) is the same action for a batch of one, so every transport is answered alike and
publishes through the same fast path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError

from chat import idempotency, ratelimit, selectors
from chat.errors import ActionError, rate_limited
from chat.models import Message, Room
from chat.validation import check_body
from ops import metrics


@dataclass(frozen=True)
class PostRequest:
    author: AbstractBaseUser
    room: Room
    body: object
    client_id: uuid.UUID | None = None


@dataclass(frozen=True)
class PostResult:
    message: Message
    created: bool


# A request's answer while the batch is worked out: None until known.
Answers = list[PostResult | ActionError | None]


def check_can_post(*, user: AbstractBaseUser, room: Room) -> None:
    """Authorise a post against the database, not the caller's copy of the user: a socket's
    user object is as old as the socket, and its user may have been deactivated since."""
    if not user.is_authenticated:
        raise ActionError("not_authenticated", "authentication required")
    if room.is_private:
        if not selectors.is_member(user=user, room=room, active=True):
            raise ActionError("forbidden", "you are not a member of this room")
    elif not selectors.is_active(user=user):
        raise ActionError("not_authenticated", "this account is not active")


def post_message(
    *, author: AbstractBaseUser, room: Room, body: object, client_id: uuid.UUID | None = None
) -> PostResult:
    """Post ``body`` to ``room`` as ``author``: ``post_messages`` with one request.

    A repeated ``client_id`` (the sender's retry) returns the message it already created,
    without counting against the rate limit. Raises ActionError for invalid or forbidden input.
    """
    (result,) = post_messages([PostRequest(author, room, body, client_id)])
    if isinstance(result, ActionError):
        raise result
    return result


def post_messages(requests: list[PostRequest]) -> list[PostResult | ActionError]:
    """Post each request, in order; return, in order, each request's result or the ActionError
    that refused it (nothing is written for a refused request).

    Each request is checked on its own; a repeated client_id answers the message it created
    (before the batch or earlier in it), uncounted; the rate limit counts what passed the checks;
    each room's new messages are written in one transaction (``Message.create_batch``).
    """
    results: Answers = [None] * len(requests)
    fresh, firsts = _check(requests, results)
    _limit_rate(fresh, results)
    for batch in fresh.values():
        batch = [(i, message) for i, message in batch if results[i] is None]
        if batch:
            _write(batch, requests, results)
    for i, req in enumerate(requests):
        if results[i] is None:  # a repeat of an earlier request of this batch
            results[i] = _repeat(results[firsts[(req.author.pk, req.client_id)]], req)
    metrics.count_posts(results)
    return results  # type: ignore[return-value]


def _check(
    requests: list[PostRequest], results: Answers
) -> tuple[dict[int, list[tuple[int, Message]]], dict[tuple[int, uuid.UUID], int]]:
    """Answer the requests refused or retried; the new messages of the others, by room id,
    with their request's index, and each client_id's first request in the batch."""
    checked: dict[tuple[int, int], ActionError | None] = {}  # (author, room) -> refusal
    fresh: dict[int, list[tuple[int, Message]]] = {}
    firsts: dict[tuple[int, uuid.UUID], int] = {}
    existing = idempotency.existing_client_ids(
        {
            (r.author.pk, r.client_id)
            for r in requests
            if r.client_id is not None and r.author.pk is not None
        }
    )
    for i, req in enumerate(requests):
        try:
            body = check_body(req.body)
            key = (req.author.pk, req.room.pk)
            if key not in checked:
                try:
                    check_can_post(user=req.author, room=req.room)
                    checked[key] = None
                except ActionError as exc:
                    checked[key] = exc
            if checked[key] is not None:
                raise checked[key]
            if req.client_id is not None:
                retried = existing.get((req.author.pk, req.client_id))
                if retried is not None:
                    idempotency.check_retry(retried, room=req.room, body=body)
                    results[i] = PostResult(retried, created=False)
                    continue
                if firsts.setdefault((req.author.pk, req.client_id), i) != i:
                    continue  # the same post twice in one batch: answered after the writes
            fresh.setdefault(req.room.pk, []).append((i, _new_message(req, body)))
        except ActionError as exc:
            results[i] = exc
    return fresh, firsts


def _new_message(req: PostRequest, body: str) -> Message:
    digest = (
        None if req.client_id is None else idempotency.request_fingerprint(room=req.room, body=body)
    )
    return Message(
        room=req.room, author=req.author, body=body, client_id=req.client_id, request_digest=digest
    )


def _limit_rate(fresh: dict[int, list[tuple[int, Message]]], results: Answers) -> None:
    """Count what passed the checks, in request order, in one round trip; refuse the excess."""
    counted = sorted(item for batch in fresh.values() for item in batch)
    waits = ratelimit.post_waits([message.author_id for _, message in counted])
    for (i, _), wait in zip(counted, waits, strict=True):
        if wait is not None:
            results[i] = rate_limited(wait)


def _write(batch: list[tuple[int, Message]], requests: list[PostRequest], results: Answers) -> None:
    """Write one room's new messages. When the INSERT meets a client_id a concurrent request
    created meanwhile (after ``_check`` looked), nothing is written: the messages are written
    one by one, and the one that lost the race answers the message that won it."""
    try:
        Message.create_batch([message for _, message in batch])
    except IntegrityError:
        if len(batch) > 1:
            for item in batch:
                _write([item], requests, results)
            return
        (i, message), req = batch[0], requests[batch[0][0]]
        try:
            won = req.client_id and idempotency.by_client_id(
                author=req.author, client_id=req.client_id, room=req.room, body=message.body
            )
        except ActionError as exc:  # the winner was another post with this client_id
            results[i] = exc
            return
        if not won:
            raise
        results[i] = PostResult(won, created=False)
        return
    for i, message in batch:
        results[i] = PostResult(message, created=True)


def _repeat(first: PostResult | ActionError | None, req: PostRequest) -> PostResult | ActionError:
    """The answer to a request whose client_id an earlier request of the batch carried."""
    if not isinstance(first, PostResult):
        return first  # type: ignore[return-value]
    try:
        idempotency.check_retry(first.message, room=req.room, body=req.body)
    except ActionError as exc:
        return exc
    return PostResult(first.message, created=False)
