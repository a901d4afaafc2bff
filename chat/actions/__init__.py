"""User-visible actions: one function each, called by the WebSocket consumer, views, the admin
and management commands alike (``chat.actions.<name>``).

Each action validates and authorises (``check_*``), then writes; events are recorded in the
outbox inside the same transaction and published after commit. By concept:

- ``posting``: post a message, for one request or many (the WebSocket's batches);
- ``editing``: edit or delete a message;
- ``rooms``: create a room or a direct conversation, join, leave, invite, remove a member;
- ``reading``: mark a room read, mark a mention read.
"""

from chat.actions.editing import delete_message, edit_message
from chat.actions.posting import (
    PostRequest,
    PostResult,
    check_can_post,
    post_message,
    post_messages,
)
from chat.actions.reading import mark_mention_read, mark_read
from chat.actions.rooms import (
    DIRECT_PREFIX,
    check_can_invite,
    create_room,
    direct_room_slug,
    invite,
    invite_username,
    is_reserved_slug,
    join_room,
    leave_room,
    open_direct_room,
    open_direct_room_with,
    remove_member,
)
from chat.errors import ActionError
from chat.validation import check_body

__all__ = [
    "DIRECT_PREFIX",
    "ActionError",
    "PostRequest",
    "PostResult",
    "check_body",
    "check_can_invite",
    "check_can_post",
    "create_room",
    "delete_message",
    "direct_room_slug",
    "edit_message",
    "invite",
    "invite_username",
    "is_reserved_slug",
    "join_room",
    "leave_room",
    "mark_mention_read",
    "mark_read",
    "open_direct_room",
    "open_direct_room_with",
    "post_message",
    "post_messages",
    "remove_member",
]
