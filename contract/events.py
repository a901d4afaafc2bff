"""Event schemas, their envelope, the names of the places events go, and every frame a server
sends to a WebSocket client.

Every event has a dotted ``type``, a schema ``version`` and a typed shape (the TypedDicts below,
which tests validate against). Subscribers depend on this module only, never on chat's models.

Frames: this module is the one place that builds a server -> client frame (README, "The
WebSocket protocol"; client frames are parsed in chat.protocol) and the channel-layer messages
that carry pre-serialized frames to sockets (``signal_message``; the relay's ``chat.event``).
Each builder returns the frame serialized once, as every socket it goes to writes it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, TypedDict

from contract import redis_keys
from contract.room_events import (  # the room events' schemas and frames, re-exported
    LEFT_REASONS,
    ROOM_EVENTS,
    ROOM_JOINED,
    ROOM_LEFT,
    ROOM_UPDATED,
    MemberLeftPayload,
    MembershipPayload,
    RoomEventData,
    RoomUpdatedPayload,
    room_frame,
    room_frame_fields,
)

SCHEMA_VERSION = 1

# Topics: one Redis Stream each.
TOPIC_MESSAGE = "chat.message"
TOPIC_ROOM = "chat.room"
TOPIC_PRESENCE = "chat.presence"
TOPIC_ACCESS = "chat.access"
TOPICS = (TOPIC_MESSAGE, TOPIC_ROOM, TOPIC_PRESENCE, TOPIC_ACCESS)

# Event types, by topic.
MESSAGE_CREATED = "message.created"  # chat.message
MESSAGE_EDITED = "message.edited"  # chat.message
MESSAGE_DELETED = "message.deleted"  # chat.message: the message became a tombstone
MESSAGE_EVENTS = (MESSAGE_CREATED, MESSAGE_EDITED, MESSAGE_DELETED)
USER_CONNECTED = "user.connected"  # chat.presence: a socket opened on a room
USER_DISCONNECTED = "user.disconnected"  # chat.presence: that socket closed
ACCESS_REVOKED = "access.revoked"  # chat.access: someone may have lost access (see chat.access)

# Why access may have been lost (AccessPayload.reason).
ACCESS_REASONS = (
    "membership_ended",  # left, removed (admin, shell, action)
    "room_private",  # a public room was made private
    "room_deleted",
    "user_deactivated",
    "user_deleted",
    "password_changed",
    "token_revoked",
    "logged_out",
)


class MessageData(TypedDict):
    id: int
    room: str
    seq: int
    author: str
    body: str  # empty once deleted
    created_at: str
    edited_at: str | None
    deleted_at: str | None


class MessagePayload(TypedDict):
    """message.created, message.edited and message.deleted: the message as it now is."""

    version: int
    change: int  # the room's change number of this change
    message: MessageData


class ConnectionPayload(TypedDict):
    version: int
    user: str
    session: str  # one id per socket: user.connected and user.disconnected pair on it


class AccessPayload(TypedDict):
    """access.revoked: open sockets it concerns re-check their access against the database.

    ``user_id`` None: everyone's (a room's readability changed); ``room_id`` None: every room
    (the user's credentials changed); ``credential``: only sockets that authenticated with that
    credential ("token:<id>" or "session:<digest of the key>"), None: all of them."""

    version: int
    reason: str
    user_id: int | None  # no username: a deleted user's name must not be published
    room_id: int | None
    credential: str | None


class Event(TypedDict):
    id: str
    topic: str
    type: str
    room: str | None
    seq: int | None
    ts: str
    payload: dict[str, Any]


def room_group(room_id: int) -> str:
    """The Channels group of a room's open sockets."""
    return f"room.{room_id}"


def user_group(user_id: int) -> str:
    """The Channels group of a user's /ws/me/ sockets."""
    return f"user.{user_id}"


# The Channels group every server process listens on once for access.revoked (chat.access).
ACCESS_GROUP = "access"


def stream_key(topic: str) -> str:
    """The Redis Stream that carries a topic: the topic's name, with PARLEY_STREAM_PREFIX
    (empty by default; contract/redis_keys.py)."""
    return redis_keys.stream(topic)


def message_data(message: Any) -> MessageData:
    """The public shape of a message: WebSocket frames, REST and events all use it."""
    return {
        "id": message.id,
        "room": message.room.slug,
        "seq": message.seq,
        "author": message.author.get_username(),
        "body": message.body,
        "created_at": _iso(message.created_at),
        "edited_at": _iso(message.edited_at) if message.edited_at else None,
        "deleted_at": _iso(message.deleted_at) if message.deleted_at else None,
    }


def make_event(
    *, topic: str, type: str, room: str | None, seq: int | None, ts: datetime, payload: dict
) -> Event:
    return {
        "id": str(uuid.uuid4()),
        "topic": topic,
        "type": type,
        "room": room,
        "seq": seq,
        "ts": _iso(ts),
        "payload": {"version": SCHEMA_VERSION, **payload},
    }


def message_changed(type: str, message: Any, *, ts: datetime | None = None) -> Event:
    """message.created / message.edited / message.deleted, for the message's latest change.

    ``ts`` defaults to the time that change wrote (created_at, edited_at, deleted_at); a change
    that writes none of them (a departed author's messages re-attributed) passes its own."""
    when = (
        ts
        or {
            MESSAGE_CREATED: message.created_at,
            MESSAGE_EDITED: message.edited_at,
            MESSAGE_DELETED: message.deleted_at,
        }[type]
    )
    return make_event(
        topic=TOPIC_MESSAGE,
        type=type,
        room=message.room.slug,
        seq=message.seq,
        ts=when,
        payload={"change": message.change, "message": message_data(message)},
    )


def message_created(message: Any) -> Event:
    return message_changed(MESSAGE_CREATED, message)


def room_event(type: str, *, room: str, ts: datetime, change: int, **payload: Any) -> Event:
    """A room event (chat.room; ``room``: the slug as it now is) with its payload: room.joined
    {user, role}, room.left {user, role, reason: one of LEFT_REASONS}, room.updated {title,
    is_private} (contract.room_events)."""
    if type == ROOM_LEFT and payload.get("reason") not in LEFT_REASONS:
        raise ValueError(f"room.left needs a reason of {LEFT_REASONS}, not {payload!r}")
    payload = {"change": change, **payload}
    return make_event(topic=TOPIC_ROOM, type=type, room=room, seq=None, ts=ts, payload=payload)


def connection(type: str, *, room: str, user: str, session: str, ts: datetime) -> Event:
    """user.connected / user.disconnected."""
    return make_event(
        topic=TOPIC_PRESENCE,
        type=type,
        room=room,
        seq=None,
        ts=ts,
        payload={"user": user, "session": session},
    )


def access_revoked(
    *,
    reason: str,
    ts: datetime,
    room: str | None = None,
    room_id: int | None = None,
    user_id: int | None = None,
    credential: str | None = None,
) -> Event:
    """access.revoked (chat.access)."""
    return make_event(
        topic=TOPIC_ACCESS,
        type=ACCESS_REVOKED,
        room=room,
        seq=None,
        ts=ts,
        payload={
            "reason": reason,
            "user_id": user_id,
            "room_id": room_id,
            "credential": credential,
        },
    )


PAYLOADS: dict[str, type] = {
    MESSAGE_CREATED: MessagePayload,
    MESSAGE_EDITED: MessagePayload,
    MESSAGE_DELETED: MessagePayload,
    ROOM_JOINED: MembershipPayload,
    ROOM_LEFT: MemberLeftPayload,
    ROOM_UPDATED: RoomUpdatedPayload,
    USER_CONNECTED: ConnectionPayload,
    USER_DISCONNECTED: ConnectionPayload,
    ACCESS_REVOKED: AccessPayload,
}

# --- server -> client frames --------------------------------------------------------------------
# The WebSocket frame type of each message event.
FRAME_TYPES = {
    MESSAGE_CREATED: "message.new",
    MESSAGE_EDITED: "message.edited",
    MESSAGE_DELETED: "message.deleted",
}
SIGNAL = "chat.signal"  # the channel-layer message of an ephemeral frame (presence, typing, ...)


def client_frame(event: Event) -> str | None:
    """The live WebSocket frame of an event (None: not one sockets see), serialized once for
    every socket: the relay publishes it with the event."""
    payload = event["payload"]
    if event["type"] in ROOM_EVENTS:
        return dumps(room_frame(*room_frame_fields(event), payload["change"]))
    if event["type"] not in FRAME_TYPES:
        return None
    return message_frame(FRAME_TYPES[event["type"]], payload["message"], payload["change"])


def message_frame(frame_type: str, message: MessageData, change: int) -> str:
    """A live frame: it carries the change number, a position a client may resume from."""
    return dumps({"type": frame_type, "change": change, "message": message})


def replay_frame(frame_type: str, message: MessageData, change: int | None = None) -> str:
    """A frame of a replay from the database, marked ``"replay": true``.

    A replay sends the new messages in seq order, then the edits and deletes of older messages
    in change order. A new message's frame carries no change number (messages in seq order are
    not in change order: the change of one replayed message is no position to resume from); an
    edit's or delete's carries its change, which is one (every change below it that the client
    lacks was sent before it). So the resume rule — the highest seq you have and the change of
    the last frame that carried one — is right wherever a connection drops, and each resume
    gets further. ``sync.done`` ends every replay with the position."""
    frame: dict = {"type": frame_type, "replay": True}
    if change is not None:
        frame["change"] = change
    frame["message"] = message
    return dumps(frame)


def changed_replay_frame(item: MessageData | RoomEventData, change: int) -> str:
    """The replay frame of a row of the edit replay: an older message's edit or delete, as the
    message now is, or a room event."""
    if "frame" in item:
        return dumps(room_frame(item["frame"], item["fields"], change, replay=True))
    kind = "message.deleted" if item["deleted_at"] else "message.edited"
    return replay_frame(kind, item, change)


def sync_done(seq: int, change: int | None) -> str:
    """The end of a replay: the position the socket now stands at."""
    return dumps({"type": "sync.done", "seq": seq, "change": change})


def ack(client_id: uuid.UUID | None, message: MessageData, *, created: bool) -> str:
    """The answer to a ``message.send``: the message (``created`` False: an earlier post with
    the same ``client_id``)."""
    return dumps(
        {
            "type": "message.ack",
            "client_id": str(client_id) if client_id else None,
            "created": created,
            "message": message,
        }
    )


def error(code: str, detail: str, **extra: Any) -> str:
    """A refused client frame: a stable ``code``, a ``detail`` for people, and extra fields
    (``client_id``, ``retry_after``...)."""
    return dumps({"type": "error", "code": code, "detail": detail, **extra})


def pong() -> str:
    return dumps({"type": "pong"})


def presence_frame(online: list[str]) -> str:
    """Who is online in a room (chat.online)."""
    return dumps({"type": "presence", "online": online})


def typing_frame(username: str) -> str:
    return dumps({"type": "typing", "user": username})


def ready(rooms: int) -> str:
    """``/ws/me/``: the socket follows ``rooms`` rooms."""
    return dumps({"type": "ready", "rooms": rooms})


def room_activity(room: str, seq: int) -> str:
    """``/ws/me/``: a new message in one of the user's rooms."""
    return dumps({"type": "room.activity", "room": room, "seq": seq})


def mention_frame(message: MessageData) -> str:
    """``/ws/me/``: the user was mentioned in ``message``."""
    return dumps({"type": "mention.new", "message": message})


def dashboard_frame(snapshot: dict[str, Any]) -> str:
    """``/ws/dashboard/``: the dashboard's figures and charts (analytics.dashboard)."""
    return dumps({"type": "dashboard", **snapshot})


def in_room(frame: str, room: str | None) -> str:
    """A frame of the multiplexed socket (``/ws/``): ``frame`` with ``"room"`` first (the
    room's slug, or null for the socket's own frames), added to the serialized frame, not
    re-serialized, so a live event's tagged frame is made once per process too."""
    return '{"room":' + dumps(room) + "," + frame[1:]


def mux_ready(max_subscriptions: int) -> str:
    """``/ws/``: the socket is open; it may follow up to ``max_subscriptions`` rooms."""
    return in_room(dumps({"type": "ready", "max_subscriptions": max_subscriptions}), None)


def unsubscribed(code: int | None = None, reason: str | None = None) -> str:
    """``/ws/``: a room is no longer followed: asked by the client (no code), or its access
    was lost (``code``: the close code a room socket would have got, and why)."""
    if code is None:
        return dumps({"type": "unsubscribed"})
    return dumps({"type": "unsubscribed", "code": code, "reason": reason})


def signal_message(frame: str, *, session: str | None = None) -> dict[str, Any]:
    """The channel-layer message that carries an ephemeral frame to a group's sockets;
    ``session``: the socket it came from, which does not receive it."""
    message = {"type": SIGNAL, "frame": frame}
    if session is not None:
        message["session"] = session
    return message


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
