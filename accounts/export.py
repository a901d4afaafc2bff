"""A person's own data as one JSON document: profile, API tokens (never the tokens themselves),
memberships, the messages they wrote, and their mentions.

It holds only their data: a mention names the message it points at (room, seq, id) but not that
message's author or body, which belong to someone else. Messages are read in chunks and the
document is produced piece by piece (``export_chunks``), so a long history is streamed rather
than built in memory, by the account page (``aexport_chunks``) and ``manage.py user export``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from itertools import islice
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from accounts.actions import user_theme
from accounts.avatars import avatar_urls
from accounts.models import ApiToken
from chat.models import Membership, Mention, Message
from contract import events

FORMAT_VERSION = 1
_CHUNK = 500
# Pieces of the document handed from the database thread to the event loop at once.
_PIECES = 200


def export_chunks(user: AbstractBaseUser) -> Iterator[str]:
    """The JSON document of ``user``'s data, in pieces that join into one object."""
    yield "{" + _field("format", FORMAT_VERSION) + ","
    yield _field("exported_at", _iso(timezone.now())) + ","
    yield _field("profile", _profile(user)) + ","
    yield from _array("tokens", (_token(t) for t in ApiToken.objects.filter(user=user)))
    yield ","
    memberships = Membership.objects.filter(user=user).select_related("room").order_by("pk")
    yield from _array("memberships", (_membership(m) for m in memberships))
    yield ","
    yield from _array("mentions", (_mention(m) for m in _mentions(user)))
    yield ","
    yield from _array("messages", (_message(m, user) for m in _messages(user)))
    yield "}"


async def aexport_chunks(user: AbstractBaseUser) -> AsyncIterator[str]:
    """``export_chunks`` for an ASGI response: pieces are made on the database thread a batch
    at a time, so the server sends the document while it is read."""
    pieces = export_chunks(user)
    take = sync_to_async(lambda: list(islice(pieces, _PIECES)), thread_sensitive=True)
    try:
        while batch := await take():
            for piece in batch:
                yield piece
    finally:  # a client gone mid-document: its cursor is closed on the thread that opened it
        await sync_to_async(pieces.close, thread_sensitive=True)()


def _field(name: str, value: Any) -> str:
    return events.dumps(name) + ":" + events.dumps(value)


def _array(name: str, items: Iterator[dict]) -> Iterator[str]:
    yield events.dumps(name) + ":["
    for i, item in enumerate(items):
        yield ("," if i else "") + events.dumps(item)
    yield "]"


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _profile(user: AbstractBaseUser) -> dict:
    return {
        "username": user.get_username(),
        "email": getattr(user, "email", ""),
        "first_name": getattr(user, "first_name", ""),
        "last_name": getattr(user, "last_name", ""),
        "date_joined": _iso(getattr(user, "date_joined", None)),
        "last_login": _iso(user.last_login),
        "is_staff": bool(getattr(user, "is_staff", False)),
        # Kept preferences: the theme ("" follows the system) and the avatar's URL (or null).
        "theme": user_theme(user),
        "avatar": avatar_urls([user.get_username()]).get(user.get_username()),
    }


def _token(token: ApiToken) -> dict:
    return {
        "name": token.name,
        "hint": token.hint,
        "created_at": _iso(token.created_at),
        "last_used_at": _iso(token.last_used_at),
        "revoked_at": _iso(token.revoked_at),
    }


def _membership(membership: Membership) -> dict:
    return {
        "room": membership.room.slug,
        "title": membership.room.title,
        "role": membership.role,
        "joined_at": _iso(membership.joined_at),
        "last_read_seq": membership.last_read_seq,
    }


def _mentions(user: AbstractBaseUser) -> Iterator[Mention]:
    rows = Mention.objects.filter(user=user).select_related("message__room").order_by("pk")
    return rows.iterator(chunk_size=_CHUNK)


def _mention(mention: Mention) -> dict:
    return {
        "room": mention.message.room.slug,
        "seq": mention.message.seq,
        "message_id": mention.message_id,
        "created_at": _iso(mention.created_at),
        "read_at": _iso(mention.read_at),
    }


def _messages(user: AbstractBaseUser) -> Iterator[Message]:
    rows = Message.objects.filter(author=user).select_related("room").order_by("pk")
    return rows.iterator(chunk_size=_CHUNK)


def _message(message: Message, author: AbstractBaseUser) -> dict:
    message.author = author  # theirs by the query: no query per message for the name
    return events.message_data(message)
