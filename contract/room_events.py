"""The room events' contract: their types on the ``chat.room`` topic, payloads and WebSocket
frames (re-exported by contract.events, which builds the events themselves).

A room event is a change of a room that is not a message — a member joined, a membership ended,
the room was renamed or made private or public — and takes the room's change number like a
message change (chat.room_events records them). Its frame: ``member.joined`` {member: {user,
role}}, ``member.left`` {member: {user}, reason}, ``room.updated`` {slug, title, is_private},
each with ``change`` (and ``"replay": true`` when replayed).
"""

from __future__ import annotations

from typing import Any, TypedDict

ROOM_JOINED = "room.joined"  # chat.room: a member joined (or was invited, or made the room)
ROOM_LEFT = "room.left"  # chat.room: a membership ended (LEFT_REASONS)
ROOM_UPDATED = "room.updated"  # chat.room: the room's slug, title or privacy changed
ROOM_EVENTS = (ROOM_JOINED, ROOM_LEFT, ROOM_UPDATED)  # each takes a room change number

# Why a membership ended (MemberLeftPayload.reason).
LEFT_REASONS = (
    "left",  # the member left
    "removed",  # by the room's owner, a moderator or staff (also the admin, a shell)
    "account_deleted",  # the member's account was deleted: the event names the placeholder
)


class MembershipPayload(TypedDict):
    """room.joined."""

    version: int
    change: int  # the room's change number it took
    user: str
    role: str


class MemberLeftPayload(TypedDict):
    """room.left; a deleted account's names the placeholder account, never the old username."""

    version: int
    change: int
    user: str
    role: str
    reason: str  # one of LEFT_REASONS


class RoomUpdatedPayload(TypedDict):
    """room.updated: the room as it now is (the event's ``room`` is its slug)."""

    version: int
    change: int
    title: str
    is_private: bool


class RoomEventData(TypedDict):
    """A room event as kept for replays (chat.models.RoomEvent): its frame's type and fields
    besides ``type`` and ``change`` (``room_frame_fields``)."""

    frame: str
    fields: dict[str, Any]


def room_frame_fields(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A room event's (contract.events.Event) frame type and its fields besides ``type`` and
    ``change``: what its live frame says and what chat.models.RoomEvent keeps for replays."""
    payload = event["payload"]
    if event["type"] == ROOM_JOINED:
        return "member.joined", {"member": {"user": payload["user"], "role": payload["role"]}}
    if event["type"] == ROOM_LEFT:
        return "member.left", {"member": {"user": payload["user"]}, "reason": payload["reason"]}
    # Flat, not under "room": /ws/ tags every frame with "room" (its slug; events.in_room).
    return "room.updated", {
        "slug": event["room"],
        "title": payload["title"],
        "is_private": payload["is_private"],
    }


def room_frame(
    frame_type: str, fields: dict[str, Any], change: int, *, replay: bool = False
) -> dict[str, Any]:
    """A room event's frame (to serialize), live or (``replay``) from the database. Both carry
    the change number: a replay sends room events in change order, among the edits and
    deletes of older messages, so each is a position to resume from."""
    frame: dict[str, Any] = {"type": frame_type}
    if replay:
        frame["replay"] = True
    return {**frame, "change": change, **fields}
