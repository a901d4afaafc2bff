"""A room history that makes a resume replay both of its parts: six messages a client has seen,
then, while it is away, new messages, edits and deletes interleaved in change order."""

from __future__ import annotations

from chat import actions
from chat.models import Message, Room
from contract import events

# What happens while the client is away: 6 posts (seq 7-12) and 8 changes to messages, 1-9.
AWAY = [
    ("edit", 2),
    ("post", None),
    ("delete", 3),
    ("post", None),
    ("edit", 5),
    ("post", None),
    ("edit", 8),
    ("delete", 4),
    ("post", None),
    ("edit", 2),
    ("post", None),
    ("delete", 9),
    ("post", None),
    ("edit", 1),
]
SEEN = 6  # seq and change of the client's position when it went away
FINAL = (12, 20)  # the room's (seq, change) afterwards


def post_seen(room: Room, author) -> dict[int, events.MessageData]:
    """The six messages the client saw; its copy of them."""
    posted = [actions.post_message(author=author, room=room, body=f"m{i}") for i in range(1, 7)]
    return {r.message.seq: events.message_data(r.message) for r in posted}


def change_while_away(room: Room, author) -> None:
    for step, (kind, seq) in enumerate(AWAY):
        if kind == "post":
            actions.post_message(author=author, room=room, body=f"away {step}")
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
