"""One pass of a room socket's replay from the database, as a plain object: no I/O.

``CatchUp`` plans the pass a chat.delivery.RoomDelivery asks for (``RoomDelivery.catch_up``):
the queries to run, one bounded page at a time (``MessagesAfter``, then ``ChangesAfter``:
chat.selectors.messages_after and changes_after), and the replay frames of each page read,
moving the delivery's position (``last_seq``, ``last_change``) as they are taken. The caller
runs the queries and sends the frames (chat.consumers.room).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from contract import events


@dataclass(frozen=True, slots=True)
class MessagesAfter:
    """Query: up to ``limit`` messages after ``after_seq`` up to ``up_to_seq``, in seq order
    (chat.selectors.messages_after)."""

    after_seq: int
    up_to_seq: int
    limit: int


@dataclass(frozen=True, slots=True)
class ChangesAfter:
    """Query: up to ``limit`` edits or deletes of messages up to ``up_to_seq`` and room events
    after change ``after_change``, merged in change order (chat.selectors.replay_changes_after)."""

    up_to_seq: int
    after_change: int
    limit: int


# A replayed message as it now is and its latest change; in the edit replay also a room event
# (member.joined, member.left, room.updated: chat.room_events) and its change.
Row = tuple[events.MessageData | events.RoomEventData, int]


def _new_message_frame(message: events.MessageData) -> str:
    return events.replay_frame("message.new", message)


class Position(Protocol):
    """Where a socket's delivery stands (chat.delivery.RoomDelivery): the newest message sent
    and the newest change accounted for (None: edits are not replayed)."""

    last_seq: int
    last_change: int | None


class CatchUp:
    """One pass of a replay up to the room's position (seq, change) read before it: first the
    messages after ``last_seq`` up to that seq as they now are, in seq order; then the edits
    and deletes of older messages and the room events after ``last_change``, in change order
    (chat.room_events: they take change numbers like edits); one bounded page at a time
    (``next_query``, then ``frames`` of its rows), ``finish`` when done.

    Stopping at the position's seq keeps ``last_seq`` and ``last_change`` in step: every message
    up to ``last_seq`` was created by change ``last_change`` at the latest, so the next pass's
    edit replay never mistakes a message already sent for an edit. What was committed meanwhile
    arrives live, or in the next pass."""

    __slots__ = (
        "delivery",
        "newest_seq",
        "newest_change",
        "page_size",
        "older_than",
        "phase",
        "cursor",
    )

    def __init__(self, delivery: Position, newest: tuple[int, int], page_size: int) -> None:
        self.delivery = delivery
        self.newest_seq, self.newest_change = newest
        self.page_size = page_size
        self.older_than = delivery.last_seq  # the edit replay covers the messages sent before
        self.phase = MessagesAfter  # the query of the page being sent; None: all read
        self.cursor: int | None = None  # the edit replay's position

    def next_query(self, page: list[Row] | None = None) -> MessagesAfter | ChangesAfter | None:
        """The next page to read, given the page just sent (None at first); None: all read."""
        d = self.delivery
        if self.phase is MessagesAfter:
            if d.last_seq < self.newest_seq and (page is None or len(page) == self.page_size):
                return MessagesAfter(
                    after_seq=d.last_seq, up_to_seq=self.newest_seq, limit=self.page_size
                )
            self.phase, self.cursor, page = ChangesAfter, d.last_change, None
        if self.phase is None or self.cursor is None:
            self.phase = None
            return None
        if page is not None:
            if len(page) < self.page_size:
                self.phase = None
                return None
            self.cursor = page[-1][1]
        return ChangesAfter(
            up_to_seq=self.older_than, after_change=self.cursor, limit=self.page_size
        )

    def frames(self, page: list[Row]) -> Iterator[str]:
        """The replay frames of the page just read, one at a time; the position moves as each
        is taken."""
        if self.phase is MessagesAfter:
            # A page cut from the process' recent pages (chat.replaypages) has its frames made.
            made = getattr(page, "frame", _new_message_frame)
            for message, _change in self._taken(page):
                yield made(message)
        else:
            for message, change in self._taken(page):
                yield events.changed_replay_frame(message, change)

    def advance(self, page: list[Row]) -> None:
        """Take the whole page as ``frames`` does, without making its frames: where the pass
        would be after sending it (chat.connecting reads ahead this way)."""
        for _row in self._taken(page):
            pass

    def needless(self, query: MessagesAfter | ChangesAfter) -> bool:
        """Whether ``query``'s page is known to send nothing, unread: an edit replay from the
        position's change on (what it would find was committed after the position was read,
        and is left to the live events or the next pass). A client that is current asks it
        on every connect."""
        return isinstance(query, ChangesAfter) and query.after_change >= self.newest_change

    def _taken(self, page: list[Row]) -> Iterator[Row]:
        """The page's rows that the pass sends, in order, the position moved as each is taken."""
        if self.phase is MessagesAfter:
            for row in page:
                self.delivery.last_seq = row[0]["seq"]
                yield row
        else:
            for row in page:
                if row[1] > self.newest_change:
                    # Committed after the position was read: it arrives live, or in the next
                    # pass (sent now, it would come again there, and its change would run
                    # ahead of the position the pass ends at).
                    self.phase = None
                    return
                yield row

    def finish(self) -> None:
        """The pass is over (all read, or the client is gone): every change up to the
        position is accounted for."""
        self.delivery.last_change = self.newest_change
