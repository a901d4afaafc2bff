"""Event schemas and the names of the places events go.

Every event has a dotted ``type``, a schema ``version`` and a typed shape (the TypedDicts below,
which tests validate against). Subscribers depend on this module only, never on chat's models.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, TypedDict

SCHEMA_VERSION = 1

# Topics: one Redis Stream each.
TOPIC_MESSAGE = "chat.message"
TOPIC_ROOM = "chat.room"
TOPIC_PRESENCE = "chat.presence"
TOPICS = (TOPIC_MESSAGE, TOPIC_ROOM, TOPIC_PRESENCE)

# Event types, by topic.
MESSAGE_CREATED = "message.created"  # chat.message
ROOM_JOINED = "room.joined"  # chat.room
ROOM_LEFT = "room.left"  # chat.room
USER_CONNECTED = "user.connected"  # chat.presence: a socket opened on a room
USER_DISCONNECTED = "user.disconnected"  # chat.presence: that socket closed


class MessageData(TypedDict):
    id: int
    room: str
    seq: int
    author: str
    body: str
    created_at: str


class MessageCreatedPayload(TypedDict):
    version: int
    message: MessageData


class MembershipPayload(TypedDict):
    version: int
    user: str
    role: str


class ConnectionPayload(TypedDict):
    version: int
    user: str
    session: str  # one id per socket: user.connected and user.disconnected pair on it


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


def stream_key(topic: str) -> str:
    """The Redis Stream that carries a topic."""
    return topic


def message_data(message: Any) -> MessageData:
    """The public shape of a message: WebSocket frames, REST and events all use it."""
    return {
        "id": message.id,
        "room": message.room.slug,
        "seq": message.seq,
        "author": message.author.get_username(),
        "body": message.body,
        "created_at": _iso(message.created_at),
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


def message_created(message: Any) -> Event:
    return make_event(
        topic=TOPIC_MESSAGE,
        type=MESSAGE_CREATED,
        room=message.room.slug,
        seq=message.seq,
        ts=message.created_at,
        payload={"message": message_data(message)},
    )


def membership(type: str, *, room: str, user: str, role: str, ts: datetime) -> Event:
    """room.joined / room.left."""
    return make_event(
        topic=TOPIC_ROOM,
        type=type,
        room=room,
        seq=None,
        ts=ts,
        payload={"user": user, "role": role},
    )


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


PAYLOADS: dict[str, type] = {
    MESSAGE_CREATED: MessageCreatedPayload,
    ROOM_JOINED: MembershipPayload,
    ROOM_LEFT: MembershipPayload,
    USER_CONNECTED: ConnectionPayload,
    USER_DISCONNECTED: ConnectionPayload,
}


def client_frame(event: Event) -> str | None:
    """The server -> client WebSocket frame for an event, serialized once for every socket."""
    if event["type"] == MESSAGE_CREATED:
        return message_new_frame(event["payload"]["message"])
    return None


def message_new_frame(message: MessageData) -> str:
    return dumps({"type": "message.new", "message": message})


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
