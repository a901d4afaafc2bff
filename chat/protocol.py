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


def _client_id(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ProtocolError("invalid_client_id", "client_id must be a UUID") from None
