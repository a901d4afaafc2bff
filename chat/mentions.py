"""The mentions subscriber: ``@username`` in a message notifies that user.

It consumes the ``chat.message`` topic like any other subscriber; the posting code knows
nothing about it.
"""

from __future__ import annotations

import re
from functools import partial

from django.contrib.auth import get_user_model
from django.db import transaction

from broker import push
from chat.models import Membership, Mention, Message, Room
from contract import events

# A username (Django's: letters, digits and @.+-_) after an @ that does not follow a word
# character, so e-mail addresses are not mentions.
MENTION = re.compile(r"(?<![\w@.+-])@([\w.+-]+)")


def mentioned_usernames(body: str) -> set[str]:
    names = {name.rstrip(".") for name in MENTION.findall(body)}
    names.discard("")  # "@..." names nobody
    return names


def handle(batch: list[events.Event]) -> None:
    """Create one Mention per (mentioned user, message); the author mentioning self is skipped,
    and so is anyone who may not read the room (a private room's non-members)."""
    wanted: list[tuple[str, int, str]] = []
    by_id: dict[int, events.MessageData] = {}
    for event in batch:
        if event["type"] != events.MESSAGE_CREATED:
            continue
        message = event["payload"]["message"]
        by_id[message["id"]] = message
        for name in mentioned_usernames(message["body"]) - {message["author"]}:
            wanted.append((name, message["id"], message["room"]))
    if not wanted:
        return
    names = {name for name, _, _ in wanted}
    users = dict(get_user_model().objects.filter(username__in=names).values_list("username", "pk"))
    private = set(
        Room.objects.filter(slug__in={room for _, _, room in wanted}, is_private=True).values_list(
            "slug", flat=True
        )
    )
    members = set(
        Membership.objects.filter(room__slug__in=private, user__username__in=names).values_list(
            "user__username", "room__slug"
        )
    )
    # A message deleted (moderated) before its event got here notifies nobody.
    existing = set(
        Message.objects.filter(
            pk__in={mid for _, mid, _ in wanted}, deleted_at__isnull=True
        ).values_list("pk", flat=True)
    )
    notify = [
        (users[name], mid)
        for name, mid, room in wanted
        if name in users and mid in existing and (room not in private or (name, room) in members)
    ]
    Mention.objects.bulk_create(
        [Mention(user_id=user_id, message_id=mid) for user_id, mid in notify],
        ignore_conflicts=True,
    )
    # Tell the users' open pages (/ws/me/) once this is committed: a hint, the Mention row is
    # what counts (a page that was closed lists it on the mentions page).
    transaction.on_commit(partial(_push, [(u, by_id[mid]) for u, mid in notify]))


def _push(notifications: list[tuple[int, events.MessageData]]) -> None:
    for user_id, message in notifications:
        frame = events.mention_frame(message)
        if not push.signal(events.user_group(user_id), frame):
            return  # Redis is down: the mentions page still lists them
