"""A room history that makes a resume replay both of its parts: six messages a client has seen,
then, while it is away, new messages, edits, deletes and room events (a member joins, the room is
renamed, the member is removed) interleaved in change order."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from chat import actions
from chat.models import Message, Room
from contract import events
from tests.support.rooms import LOBBY_CHANGES

# What happens while the client is away: 6 posts (seq 7-12), 8 changes to messages 1-9 and 3
# room events; each step takes one change number.
AWAY = [
    ("edit", 2),
    ("post", None),
    ("join", "carol"),
    ("delete", 3),
    ("post", None),
    ("edit", 5),
    ("rename", "Lobby, renamed"),
    ("post", None),
    ("edit", 8),
    ("delete", 4),
    ("post", None),
    ("edit", 2),
    ("remove", "carol"),
    ("post", None),
    ("delete", 9),
    ("post", None),
    ("edit", 1),
]
ROOM_EVENTS = 3  # of AWAY: member.joined, room.updated, member.left
BEFORE = LOBBY_CHANGES  # alice made the room, bob joined: room events 1 and 2
SEEN = 6  # seq of the client's position when it went away
SEEN_CHANGE = BEFORE + SEEN  # and its change
FINAL = (12, SEEN_CHANGE + len(AWAY))  # the room's (seq, change) afterwards


def post_seen(room: Room, author) -> dict[int, events.MessageData]:
    """The six messages the client saw; its copy of them."""
    posted = [actions.post_message(author=author, room=room, body=f"m{i}") for i in range(1, 7)]
    return {r.message.seq: events.message_data(r.message) for r in posted}


def change_while_away(room: Room, author) -> None:
    """``author`` owns ``room``."""
    for step, (kind, seq) in enumerate(AWAY):
        if kind == "post":
            actions.post_message(author=author, room=room, body=f"away {step}")
            continue
        if kind in ("join", "rename", "remove"):
            _room_event(room, author, kind, seq)
            continue
        message = Message.objects.select_related("room", "author").get(room=room, seq=seq)
        if kind == "edit":
            actions.edit_message(user=author, message=message, body=f"edited {step}")
        else:
            actions.delete_message(user=author, message=message)


def make_history(room: Room, author) -> dict[int, events.MessageData]:
    copy = post_seen(room, author)
    change_while_away(room, author)
    return copy


def _room_event(room: Room, owner, kind: str, value: str) -> None:
    if kind == "join":
        user, _ = get_user_model().objects.get_or_create(username=value)
        actions.join_room(user=user, room=room)
    elif kind == "rename":
        room = Room.objects.get(pk=room.pk)
        room.title = value
        room.save()  # the ORM's save: the room's post_save records room.updated
    else:
        actions.remove_member(remover=owner, room=room, username=value)


def room_state(room: Room) -> dict:
    """What a client keeps of a room besides its messages: its title and its members."""
    room = Room.objects.get(pk=room.pk)
    members = set(room.memberships.values_list("user__username", flat=True))
    return {"title": room.title, "members": members}
