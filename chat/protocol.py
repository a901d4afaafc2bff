"""The WebSocket protocol: parsing client frames, and the close codes (the frames a server
sends are built in contract.events, with the events they carry).

Close codes (also in the README):
  4400 bad connection parameters (e.g. after_seq not a non-negative integer)
  4401 not authenticated            4403 access to the room was taken away (open socket)
  4404 unknown room, or a private room you are not a member of (the same answer)
  4408 too slow: the client did not read what the server had for it (retry with after_seq)
  4409 too many sockets of the user (chat.limits)
  4429 sustained flood of rejected frames
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from chat.errors import Refused

CLOSE_BAD_REQUEST = 4400
CLOSE_FLOOD = 4429
CLOSE_TOO_SLOW = 4408  # realtime.sending.ClientGoneSafeSend closes a socket that does not read


class ProtocolError(Refused):
    """A client frame that cannot be understood."""


@dataclass(frozen=True)
class SendMessage:
    body: object
    client_id: uuid.UUID | None


@dataclass(frozen=True)
class Sync:
    after_seq: int
    after_change: int | None = None


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class Typing:
    pass


@dataclass(frozen=True)
class Subscribe:
    """``/ws/``: follow a room, resuming like a room socket's connection (chat.consumers.mux)."""

    room: str
    after_seq: int | None = None
    after_change: int | None = None
    presence: bool = False  # opt in to the room's presence and typing frames


@dataclass(frozen=True)
class Unsubscribe:
    room: str


ClientFrame = SendMessage | Sync | Ping | Typing


def parse_seq(value: Any) -> int:
    """A non-negative seq from a frame field or a query-string value."""
    # ASCII digits only: str.isdigit() also accepts "²" or "١", which int() rejects or reads.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        try:
            value = int(value)
        except ValueError:  # more digits than int() converts; refused below
            pass
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError("invalid_seq", "after_seq must be a non-negative integer")
    return value


def parse_client_frame(text: str | None, data: bytes | None) -> ClientFrame:
    """Parse one client frame; raises ProtocolError with a stable code for anything else."""
    return client_frame(load_frame(text, data))


def load_frame(text: str | None, data: bytes | None) -> dict:
    """A client frame's JSON object; raises ProtocolError for anything else."""
    if text is None:
        raise ProtocolError("binary_not_supported", "send JSON text frames")
    if len(text.encode()) > settings.PARLEY["MAX_FRAME_BYTES"]:
        raise ProtocolError("frame_too_large", "frame exceeds the size limit")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        raise ProtocolError("bad_json", "frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise ProtocolError("not_an_object", "frame must be a JSON object")
    return frame


def client_frame(frame: dict) -> ClientFrame:
    """A room socket's frame from its JSON object (``load_frame``)."""
    kind = frame.get("type")
    if kind == "message.send":
        return SendMessage(body=frame.get("body"), client_id=_client_id(frame.get("client_id")))
    if kind == "sync":
        after_change = frame.get("after_change")
        return Sync(
            after_seq=parse_seq(frame.get("after_seq")),
            after_change=None if after_change is None else parse_seq(after_change),
        )
    if kind == "ping":
        return Ping()
    if kind == "typing":
        return Typing()
    raise ProtocolError("unknown_type", f"unknown frame type {kind!r}")


def mux_frame(frame: dict) -> tuple[str | None, ClientFrame | Subscribe | Unsubscribe]:
    """A ``/ws/`` frame from its JSON object: (the room it names, the frame). Every frame but
    ``ping`` names a room (a slug) in ``"room"``."""
    room = frame.get("room")
    kind = frame.get("type")
    if room is None and kind == "ping":
        return None, Ping()
    if not isinstance(room, str) or not room:
        raise ProtocolError("room_required", "the frame must name a room (its slug) in 'room'")
    if kind == "subscribe":
        after_seq, after_change = frame.get("after_seq"), frame.get("after_change")
        return room, Subscribe(
            room=room,
            after_seq=None if after_seq is None else parse_seq(after_seq),
            after_change=None if after_change is None else parse_seq(after_change),
            presence=frame.get("presence") is True,
        )
    if kind == "unsubscribe":
        return room, Unsubscribe(room=room)
    return room, client_frame(frame)


def _client_id(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ProtocolError("invalid_client_id", "client_id must be a UUID") from None
