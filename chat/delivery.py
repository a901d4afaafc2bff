"""A room socket's delivery rules as a plain object: no I/O, no asyncio, no socket.

``RoomDelivery`` is the state one socket keeps for one room and the rules that go with it. It
is fed what happens — a live event, a replay's start, position, pages and end, a post sent and
answered, an access change — and answers with what to do: a verdict for a live event (``SEND``
its pre-made frame, ``CATCH_UP`` from the database, or None: nothing), the frames to send, or
the next query of a replay (one pass of it: chat.catchup.CatchUp). The caller owns every I/O:
the sends, the database, the tasks and locks (chat.consumers.room is that caller for
``/ws/rooms/<slug>/``). Nothing in it belongs to the socket rather than the room, so one
socket could host one per room it follows.

The guarantee it keeps: ``message.new`` frames go out in seq order with no gap and no
duplicate, and every later edit or delete follows. Each change of a room (a message created,
edited or deleted; a room event: a member joined or left, the room renamed or made private)
has a change number 1, 2, 3...; ``last_change`` is the newest change accounted
for. A live event at or below it is dropped; one beyond ``last_change + 1`` (the live layer lost
something) asks for a catch-up from the database, the source of truth.

Two things must not interleave with live delivery:
- a replay (connect, ``sync``, a gap, a Redis reconnect, an access re-check): from
  ``begin_replay`` to ``end_replay`` live events are noted (``missed_change``) and the newest
  of them kept (up to ``keep``, contiguous: ``kept``). When a pass over the database ends, the
  kept events that continue its position without a gap are what it missed: the replay ends
  (``sync.done``) and sends them as live frames (``release_kept``). Only when they do not (a gap
  before or among them, more than ``keep`` of them, a Redis reconnect) does the replay's caller
  run another pass, for as long as ``catch_up_owed()``. So a replay under steady traffic ends
  after one pass, not when the traffic stops;
- the socket's own posts: from ``post_submitted`` until nothing is in flight, live events are
  held and released in order (``release_next``) once the ack that covers them has gone out, so
  a post's ack precedes the live copy of its message.

Replay frames follow the README's resume rule (contract.events.replay_frame): marked
``"replay": true``, new messages first in seq order without a change number, then edits and
deletes of older messages and room events (chat.room_events) in change order with theirs,
and ``sync.done`` ends every replay
that moved the position (every one the client asked for).
"""

from __future__ import annotations

import collections
from typing import Any, Final

from chat.catchup import CatchUp
from contract import events

# Verdicts on a live event (RoomDelivery.live / deliver); None: nothing to do.
SEND: Final = "send"  # write the event's pre-serialized frame (event["frame"]) to the socket
CATCH_UP: Final = "catch_up"  # start a catch-up from the database (a replay of its own)

MAX_INFLIGHT = 64  # a socket's posts awaiting their ack before the server stops reading it
KEEP = 200  # live events a replay keeps by default (the newest; the room consumer: a page)
RECONNECTED = "layer.reconnected"  # chat.layers: Redis came back, what it carried meanwhile is lost
NO_POSITION: Final = (0, 0)  # replay_from outside a replay: one shared tuple, not one per socket


class RoomDelivery:
    """One socket's delivery state for one room (see the module docstring); the caller knows
    which room it is.

    A new delivery is replaying: its socket listens on the room first and replays from the
    database next, so live events are noted (and kept) until that first replay ends."""

    __slots__ = (
        "last_seq",
        "last_change",
        "replaying",
        "missed_change",
        "kept",
        "keep",
        "pass_owed",
        "replay_from",
        "access_dirty",
        "stopped",
        "held",
        "inflight",
        "acked_change",
    )

    def __init__(self, keep: int = KEEP) -> None:
        self.last_seq = 0  # the newest message sent
        # the newest change accounted for (None: edits are not replayed, set by the replay)
        self.last_change: int | None = 0
        self.replaying = True  # a replay is running or waiting to run: live events are noted
        self.missed_change = 0  # the newest change a replay was told of while it ran
        # The live events that came in during the replay, the newest ``keep`` of them without a
        # gap (the last is ``missed_change``'s), to send after it; None when none (most sockets).
        self.kept: collections.deque[dict] | None = None
        self.keep = keep
        self.pass_owed = False  # a pass over the database is owed, whatever it finds
        # the position the running replay started at (between start_replay and end_replay)
        self.replay_from: tuple[int, int | None] = NO_POSITION
        self.access_dirty = False  # access may have changed: re-check before delivering
        self.stopped = False  # access was lost: nothing more is delivered
        self.held: list[dict] | None = None  # live events set aside while posts are in flight
        # The posts awaiting their answer, oldest first, each with the caller's ticket for it
        # (its future): a deque while posts are in flight, else the shared empty tuple (an
        # empty deque costs 760 bytes, and most sockets are idle).
        self.inflight: collections.deque[tuple[Any, Any]] | tuple = ()
        self.acked_change = 0  # the newest change of a message whose post was acked

    # --- live events --------------------------------------------------------------------------
    def live(self, event: dict) -> str | None:
        """A message of the room's group: a ``chat.event`` or ``layer.reconnected``. The
        hottest path of the fan-out: a few comparisons per socket per event."""
        if event["type"] == RECONNECTED:
            # Anything published while Redis was away is in the database, and an access
            # change may have been missed: one pass, after a re-check. (Not a change number
            # to wait for: in a quiet room none comes, and the replay would poll until one.)
            self.access_dirty = True
            self.pass_owed = True
            return self._note_missed(0)
        if self.held is not None:
            self.held.append(event)
            return None
        return self.deliver(event)

    def deliver(self, event: dict) -> str | None:
        """The verdict on a ``chat.event`` that is not (or no longer) held."""
        if self.stopped:
            return None
        change = event["change"]
        if self.replaying or self.access_dirty or change > (self.last_change or 0) + 1:
            return self._note_missed(change, event)
        if change <= self.last_change:
            return None
        self.last_change = change
        if event["event"] == events.MESSAGE_CREATED:
            if event["seq"] <= self.last_seq:
                return None  # already sent, in its latest state, by a catch-up
            self.last_seq = event["seq"]
        return SEND

    def _note_missed(self, change: int, event: dict | None = None) -> str | None:
        """Change ``change`` (at least) was not sent: a replay must bring the socket up to it,
        or send ``event`` (its live event) after it. ``CATCH_UP`` when none is running or
        waiting to run."""
        if self.stopped:
            return None
        if change > self.missed_change:
            self.missed_change = change
            if event is not None:
                self._keep(event)
        if self.replaying:
            return None
        self.replaying = True
        return CATCH_UP

    def _keep(self, event: dict) -> None:
        """Keep ``event``, the newest change noted, for after the replay: the kept events run
        without a gap up to it, the oldest dropped beyond ``keep`` (a pass then covers them)."""
        kept = self.kept
        if kept is None:
            kept = self.kept = collections.deque(maxlen=self.keep)
        elif kept and event["change"] != kept[-1]["change"] + 1:
            kept.clear()  # one was lost on the way: a pass must cover it, and those before it
        kept.append(event)

    def _kept_follow(self) -> bool:
        """Whether the kept events continue the position without a gap up to the newest change
        noted (dropping those the replay already accounted for)."""
        kept, last = self.kept, self.last_change or 0
        while kept and kept[0]["change"] <= last:
            kept.popleft()
        # Non-empty, the kept events end at missed_change: contiguous up to it.
        return (
            bool(kept)
            and kept[0]["change"] == last + 1
            and kept[-1]["change"] == self.missed_change
        )

    # --- access -------------------------------------------------------------------------------
    def access_changed(self) -> str | None:
        """Access may have changed: deliver nothing until it is re-checked. ``CATCH_UP`` when
        a replay must start (its first step re-checks; what was noted meanwhile follows)."""
        self.access_dirty = True
        if self.replaying or self.stopped:
            return None
        self.replaying = True
        return CATCH_UP

    def check_access(self) -> bool:
        """Whether a re-check of access must run now (one was asked for and access is not
        lost); the request is taken: ask again while this returns True."""
        if self.access_dirty and not self.stopped:
            self.access_dirty = False
            return True
        return False

    def may_send(self) -> bool | None:
        """Whether the room's frames may go out now; None: only after a re-check of access."""
        if self.access_dirty and not self.stopped:
            return None
        return not self.stopped

    def stop(self) -> None:
        """Access is lost: nothing more is delivered, no replay goes on."""
        self.stopped = True
        self.kept = None

    # --- replays ------------------------------------------------------------------------------
    def begin_replay(self) -> None:
        """A replay was asked for (and again when its turn comes: a replay that ended while it
        waited let live events through): from now live events are noted and kept."""
        self.replaying = True

    def start_replay(self) -> None:
        """The replay runs now (access checked): remember where it started."""
        self.replaying = True
        self.replay_from = (self.last_seq, self.last_change)

    def resume(
        self, after_seq: int | None, after_change: int | None, newest: tuple[int, int]
    ) -> None:
        """A client's position (``after_seq`` None: from now; ``after_change`` None: no edits
        replayed), capped at the room's ``newest`` (seq, change): a position beyond it would
        hide what comes in between. Then ``catch_up(newest)``."""
        newest_seq, newest_change = newest
        if after_seq is None:
            self.last_seq, self.last_change = newest_seq, newest_change
        else:
            self.last_seq = min(after_seq, newest_seq)
            self.last_change = None if after_change is None else min(after_change, newest_change)

    def catch_up(self, newest: tuple[int, int], page_size: int) -> CatchUp:
        """The plan of a pass up to the room's position ``newest`` (seq, change), read before
        any of the pass' queries."""
        self.pass_owed = False
        return CatchUp(self, newest, page_size)

    def catch_up_owed(self) -> bool:
        """Whether a pass is owed: Redis reconnected, or live events came in beyond where the
        replay got to and the kept ones do not continue it without a gap."""
        if self.stopped:
            return False
        return self.pass_owed or (
            self.missed_change > (self.last_change or 0) and not self._kept_follow()
        )

    def release_kept(self) -> dict | None:
        """After the replay's last pass and its ``sync.done``: the next kept live event to send
        as a live frame (its pre-serialized ``event["frame"]``), in change order; the position
        moves as each is taken. None when none is left, or the next does not follow (one was
        lost on the way while they went out: ``end_replay`` then asks for a pass). Events that
        come in meanwhile are kept, and follow."""
        kept = self.kept
        while kept and not self.stopped:
            event = kept[0]
            change, last = event["change"], self.last_change or 0
            if change > last + 1:
                return None
            kept.popleft()
            if change <= last:
                continue
            self.last_change = change
            if event["event"] == events.MESSAGE_CREATED:
                if event["seq"] <= self.last_seq:
                    continue  # sent, in its latest state, by the pass
                self.last_seq = event["seq"]
            return event
        return None

    def replay_done(self, *, announce: bool) -> str | None:
        """The ``sync.done`` frame that ends the replay, or None: always when ``announce`` (the
        client asked), else when the replay moved the position (its frames carry no change
        number: the client learns the position it may resume from here)."""
        if self.stopped:
            return None
        position = (self.last_seq, self.last_change)
        if announce or position != self.replay_from:
            return events.sync_done(self.last_seq, self.last_change)
        return None

    def end_replay(self, *, completed: bool = True) -> str | None:
        """The replay is over (``completed``: its last frame was sent; False: it failed or
        was cancelled). Live delivery resumes. ``CATCH_UP`` when something came in while the
        last frame was being sent that would otherwise wait for the next live event: an event
        beyond the position (kept events not sent are only noted from here: the next replay's
        pass covers them), a Redis reconnect, an access change to re-check."""
        self.kept = None
        self.replay_from = NO_POSITION  # an idle socket keeps no tuple of its own
        owed = (
            completed
            and not self.stopped
            and (
                self.pass_owed or self.missed_change > (self.last_change or 0) or self.access_dirty
            )
        )
        if not owed:  # else what is owed is the next replay's
            self.missed_change, self.pass_owed = 0, False
        self.replaying = self.stopped  # once stopped, live events stay set aside
        return self._note_missed(0) if owed else None

    # --- the socket's own posts -------------------------------------------------------------
    def post_submitted(self, post: Any, ticket: Any) -> None:
        """A post went to the writer; ``ticket`` is what the caller awaits for its answer.
        Live events are held from now until nothing is in flight."""
        if not self.inflight:
            self.inflight = collections.deque()
        self.inflight.append((post, ticket))
        if self.held is None:
            self.held = []  # the ack of a post goes out before the live copy of its message

    def oldest_post(self) -> tuple[Any, Any] | None:
        """(post, ticket) of the post answered next, or None when none is in flight."""
        return self.inflight[0] if self.inflight else None

    def backlog(self) -> Any | None:
        """The ticket to wait for before taking another post (``MAX_INFLIGHT`` in flight)."""
        return self.inflight[0][1] if len(self.inflight) >= MAX_INFLIGHT else None

    def post_acked(self, message: events.MessageData, *, created: bool, change: int) -> str:
        """The oldest post was written (or found: ``created`` False): its ack frame."""
        post, _ = self._answered()
        self.acked_change = max(self.acked_change, change)
        return events.ack(post.client_id, message, created=created)

    def post_refused(self) -> Any:
        """The oldest post was refused: the post, for the caller's error frame."""
        return self._answered()[0]

    def _answered(self) -> tuple[Any, Any]:
        answered = self.inflight.popleft()
        if not self.inflight:
            self.inflight = ()
        return answered

    def release_next(self) -> dict | None:
        """The next held live event that may go now (``deliver`` gives its verdict), or None.
        An event beyond the newest acked change waits while posts are in flight: it may be
        the live copy of a post not yet acked."""
        held = self.held
        if held:
            if self.inflight and held[0]["change"] > self.acked_change:
                return None
            return held.pop(0)
        if not self.inflight:
            self.held = None
        return None
