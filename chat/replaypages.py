"""The new messages a process' replays of a room read lately, kept for the next socket that asks.

After a deploy or a network blip a process' sockets reconnect within seconds and resume from
nearly the same seq: each used to read the same pages of messages from the database and make
the same replay frames (1.4 ms of a 6.4 ms reconnect on the database thread alone, ``python -m
bench connect-profile --mode wave``). Here a room's latest read is kept, a contiguous run of
messages (seqs are gapless: a delete leaves a tombstone) with each one's replay frame made once
(``CachedPage.frame``), and pages are cut from it.

The rule that keeps a cut page as good as a read: an entry holds messages ``lo``..``hi`` read
after the room's change ``as_of`` was committed, so they reflect every change up to it (and
perhaps later ones, as a read made later would). A socket whose position's change is not
above ``as_of`` takes its page as it is. A newer one first asks the database whether any
message up to ``hi`` changed, or any room event was recorded, after ``as_of``
(``sql.any_change_after``, ``sql.room_events_after``: two indexed probes, nearly always empty);
if so the entry is dropped and the page read afresh; if not, the entry holds as of the newer
change. Messages past ``hi`` are read (the page's own limit) and appended. The replay around it
(chat.catchup) is unchanged: a page served here is what a read at that moment would have
returned.

Bounded: ``MAX_ROWS`` messages per room (the oldest cut), ``MAX_ROOMS`` rooms (the least
recently used dropped), each entry at most ``MAX_AGE_S`` old (an author's renamed account, which
takes no change number, shows in replays again after that).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from chat import selectors
from chat.catchup import MessagesAfter, Row
from contract import events
from database import sql

MAX_ROWS = 1_000
MAX_ROOMS = 8
MAX_AGE_S = 10.0


class CachedPage(list):
    """A page cut from a room's entry: its rows, and their replay frames made once for every
    socket (chat.catchup.CatchUp.frames asks ``frame``)."""

    __slots__ = ("_frames",)

    def frame(self, message: events.MessageData) -> str:
        made = self._frames.get(message["seq"])
        if made is None:
            made = self._frames[message["seq"]] = events.replay_frame("message.new", message)
        return made


@dataclass(slots=True)
class _Entry:
    rows: list[Row]  # messages lo..hi, each with its latest change
    as_of: int
    born: float = field(default_factory=time.monotonic)
    frames: dict[int, str] = field(default_factory=dict)  # seq -> replay frame
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def lo(self) -> int:
        return self.rows[0][0]["seq"]

    @property
    def hi(self) -> int:
        return self.rows[-1][0]["seq"]

    def cut(self, first: int, last: int) -> CachedPage:
        page = CachedPage(self.rows[first - self.lo : last - self.lo + 1])
        page._frames = self.frames
        return page


_entries: dict[int, _Entry] = {}  # room id -> its entry, least recently used first
_entries_lock = threading.Lock()


def clear() -> None:
    """Forget every room (tests: a rolled-back room's id is used again)."""
    with _entries_lock:
        _entries.clear()


def messages_after(room_id: int, query: MessagesAfter, as_of: int) -> list[Row]:
    """``query``'s page (selectors.messages_after) for a replay at a position whose change is
    ``as_of``: cut from the room's entry when it holds the page's first message, else read
    (and kept)."""
    first, last = query.after_seq + 1, min(query.up_to_seq, query.after_seq + query.limit)
    entry = _entry(room_id)
    if entry is None:
        return _read(room_id, query, as_of)
    with entry.lock:
        if _entry(room_id) is not entry or not _usable(entry, room_id, first, as_of):
            return _read(room_id, query, as_of)
        if last > entry.hi and not _extend(entry, room_id, last, query.limit):
            return _read(room_id, query, as_of)
        return entry.cut(first, min(last, entry.hi))


def _entry(room_id: int) -> _Entry | None:
    with _entries_lock:
        entry = _entries.pop(room_id, None)
        if entry is None or time.monotonic() - entry.born > MAX_AGE_S:
            return None
        _entries[room_id] = entry  # now the most recently used
        return entry


def _usable(entry: _Entry, room_id: int, first: int, as_of: int) -> bool:
    """Whether ``entry`` holds ``first`` (or ends just before it) and its messages reflect every
    change up to ``as_of``, moving its ``as_of`` up when the probes say nothing changed."""
    if not entry.lo <= first <= entry.hi + 1:
        return False
    if as_of > entry.as_of:
        if sql.any_change_after(room_id, entry.hi, entry.as_of):
            return False
        if sql.room_events_after(room_id, entry.as_of, 1):
            return False
        entry.as_of = as_of
    return True


def _extend(entry: _Entry, room_id: int, last: int, limit: int) -> bool:
    """Append the messages after the entry's ``hi`` up to ``last``, read now (so as of a change
    at least ``entry.as_of``); False if what came back does not follow on."""
    hi = entry.hi
    rows = selectors.messages_after(room_id=room_id, after_seq=hi, up_to_seq=last, limit=limit)
    if not _runs_on(rows, hi + 1):
        return False
    entry.rows.extend(rows)
    if len(entry.rows) > MAX_ROWS:
        for row in entry.rows[: len(entry.rows) - MAX_ROWS]:
            entry.frames.pop(row[0]["seq"], None)
        del entry.rows[: len(entry.rows) - MAX_ROWS]
    return True


def _read(room_id: int, query: MessagesAfter, as_of: int) -> list[Row]:
    """The page read from the database, kept as the room's entry when its seqs run on from the
    query's (they do, but for a room deleted meanwhile)."""
    rows = selectors.messages_after(
        room_id=room_id, after_seq=query.after_seq, up_to_seq=query.up_to_seq, limit=query.limit
    )
    first = query.after_seq + 1
    if not rows or not _runs_on(rows, first):
        return rows
    entry = _Entry(rows=rows, as_of=as_of)
    with _entries_lock:
        _entries.pop(room_id, None)
        _entries[room_id] = entry
        while len(_entries) > MAX_ROOMS:
            del _entries[next(iter(_entries))]
    return entry.cut(first, entry.hi)


def _runs_on(rows: list[Row], first: int) -> bool:
    """Whether the rows' seqs are ``first``, ``first + 1``, ... (what was read follows on)."""
    return all(row[0]["seq"] == seq for seq, row in enumerate(rows, first))
