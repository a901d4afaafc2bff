"""What analytics keeps of people: no message bodies, and no username of a deleted user.

Behaviour records store an event's payload without the message body (analytics counts messages,
it never needed what they said). A deleted user's username is replaced by the placeholder's in
every record and aggregate (``forget_user``, called in the deletion's transaction), and in events
of theirs that arrive later (still in flight at the deletion), via ``ForgottenUser``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q

from analytics.models import BehaviourRecord, ConnectionSession, ForgottenUser, UserMinute
from database import sql

# username -> (shown_as, forgotten_at)
Forgotten = dict[str, tuple[str, datetime]]

_CHUNK = 500


def forgotten(usernames: set[str]) -> Forgotten:
    """The deleted users among ``usernames`` (one query per 500 names: every batch asks)."""
    names = usernames - {""}
    if not names:
        return {}
    rows = sql.rows_in(ForgottenUser, "username", names)
    return {r.username: (r.shown_as, r.forgotten_at) for r in rows}


def shown(username: str, occurred: datetime, gone: Forgotten) -> str:
    """The name analytics keeps for ``username`` in an event that occurred at ``occurred``."""
    if username in gone and occurred <= gone[username][1]:
        return gone[username][0]
    return username


def stored_payload(payload: dict[str, Any], occurred: datetime, gone: Forgotten) -> dict:
    """An event's payload as a behaviour record keeps it: the message without its body, and
    deleted users' names replaced."""
    kept = dict(payload)
    if isinstance(kept.get("message"), dict):
        message = {k: v for k, v in kept["message"].items() if k != "body"}
        if "author" in message:
            message["author"] = shown(message["author"], occurred, gone)
        kept["message"] = message
    if isinstance(kept.get("user"), str):
        kept["user"] = shown(kept["user"], occurred, gone)
    return kept


def forget_user(*, username: str, shown_as: str, at: datetime) -> None:
    """Replace ``username`` by ``shown_as`` in every record, session and per-user aggregate
    (counts are added to the placeholder's, so totals stay), and remember it for events that
    occurred before ``at`` but arrive later. Runs inside the caller's transaction."""
    ForgottenUser.objects.update_or_create(
        username=username, defaults={"shown_as": shown_as, "forgotten_at": at}
    )
    gone = {username: (shown_as, at)}
    mine = Q(user=username) | Q(payload__message__author=username)
    records = BehaviourRecord.objects.filter(mine)
    batch: list[BehaviourRecord] = []
    for record in records.order_by("pk").iterator(chunk_size=_CHUNK):
        record.user = shown(record.user, at, gone)
        record.payload = stored_payload(record.payload, at, gone)
        batch.append(record)
        if len(batch) == _CHUNK:
            BehaviourRecord.objects.bulk_update(batch, ["user", "payload"])
            batch = []
    BehaviourRecord.objects.bulk_update(batch, ["user", "payload"])
    minutes = UserMinute.objects.filter(user=username)
    sql.upsert_add(
        UserMinute,
        ("user", "minute"),
        ("messages",),
        {(shown_as, m.minute): (m.messages,) for m in minutes},
    )
    minutes.delete()
    ConnectionSession.objects.filter(user=username).update(user=shown_as)
