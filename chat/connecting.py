"""A socket's connect in one database hop: the room, the user's access to it, the room's position
and the first pages of the replay, read by one call on a database thread (infra.db).

The rule that makes a resume gap-free: the socket listens on the room's group BEFORE the
position is read, so an event committed after the read arrives live (kept by the delivery until
the replay is done, and deduplicated). Listening needs the room's id, which the slug in the URL
does not give; so each process remembers the ids of the rooms its sockets opened (``guess``,
bounded, learned from earlier connects). With a guess the socket listens first and then makes
one call (``open_room``); the room read there is checked against the guess, and a room that is
not the one guessed (renamed, deleted, its slug reused) sends the socket back to the path
without a guess: read the room, listen, read the position (chat.consumers.room).

``read_ahead`` is the replay's side: the position and the pages the pass will ask for first
(up to ``PAGES``), read in the same call; the replay (chat.consumers.stream) takes a page from
here when its query is one of these, and from the database otherwise. Nothing is sent from
here: the pages are sent by the replay, after its access checks, exactly as if read then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from chat import replaypages, selectors
from chat.catchup import ChangesAfter, MessagesAfter, Row
from chat.delivery import RoomDelivery
from chat.models import Room

PAGES = 2  # pages read ahead: the new messages' first and the edit replay's, in the common case
GUESSES = 10_000  # rooms whose ids a process remembers (a few hundred kB at most)

_room_ids: dict[str, int] = {}  # slug -> id, oldest first


def guess(slug: str) -> int | None:
    """The id the room ``slug`` had when a socket of this process last opened it, if known."""
    return _room_ids.get(slug)


def learn(slug: str, room_id: int) -> None:
    """Remember ``slug``'s room id (the oldest entry forgotten beyond ``GUESSES``)."""
    _room_ids.pop(slug, None)
    _room_ids[slug] = room_id
    if len(_room_ids) > GUESSES:
        del _room_ids[next(iter(_room_ids))]


def forget(slug: str) -> None:
    _room_ids.pop(slug, None)


@dataclass(slots=True)
class ReadAhead:
    """The room's position (seq, change), read first, and the pages of the pass up to it read
    after it, by query (chat.catchup)."""

    newest: tuple[int, int]
    pages: dict[MessagesAfter | ChangesAfter, list[Row]] = field(default_factory=dict)

    def page(self, query: MessagesAfter | ChangesAfter) -> list[Row] | None:
        """The page read for ``query`` (taken: read once), or None."""
        return self.pages.pop(query, None)


def read_ahead(
    *, room_id: int, after_seq: int | None, after_change: int | None, page_size: int
) -> ReadAhead:
    """The room's position, then the first ``PAGES`` pages of the pass a delivery resuming at
    (``after_seq``, ``after_change``) will ask for (RoomDelivery.resume, then catch_up): a
    client that is current asks none. Room.DoesNotExist if the room is gone."""
    newest = selectors.room_position(room_id=room_id)
    ahead = ReadAhead(newest)
    scratch = RoomDelivery()  # the same position as the socket's, moved without frames
    scratch.resume(after_seq, after_change, newest)
    plan = scratch.catch_up(newest, page_size)
    query = plan.next_query()
    while query is not None and len(ahead.pages) < PAGES:
        page = [] if plan.needless(query) else read_page(room_id, query, newest[1])
        ahead.pages[query] = page
        plan.advance(page)
        query = plan.next_query(page)
    return ahead


def read_page(room_id: int, query: MessagesAfter | ChangesAfter, as_of: int) -> list[Row]:
    """The rows of one replay query (chat.catchup) of a pass up to a position whose change is
    ``as_of``: new messages through the process' recent pages (chat.replaypages)."""
    if isinstance(query, MessagesAfter):
        return replaypages.messages_after(room_id, query, as_of)
    return selectors.replay_changes_after(
        room_id=room_id,
        up_to_seq=query.up_to_seq,
        after_change=query.after_change,
        limit=query.limit,
    )


def open_room(
    *,
    user: AbstractBaseUser | AnonymousUser,
    slug: str,
    guessed: int,
    after_seq: int | None,
    after_change: int | None,
    page_size: int,
) -> tuple[Room, ReadAhead | None]:
    """A connect's one hop, for a socket already listening on room ``guessed``'s group: the room
    ``slug`` if ``user`` may read it (selectors.RoomAccessError otherwise), and, when it is the
    room guessed, its ``read_ahead``. None: another room (the caller listens on its group and
    reads the position after that)."""
    room = selectors.room_for_user(user=user, slug=slug)
    if room.pk != guessed:
        return room, None
    try:
        ahead = read_ahead(
            room_id=room.pk, after_seq=after_seq, after_change=after_change, page_size=page_size
        )
    except Room.DoesNotExist:  # deleted just now: the path without a guess says so
        return room, None
    return room, ahead
