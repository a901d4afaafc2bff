"""chat.delivery.RoomDelivery without a server: events in, verdicts and frames out.

The first tests feed it by hand, one rule each. The last one drives it the way the room
consumer does, against a simulated room whose changes commit and publish at random points of
a replay (some live events lost, some late), and checks what a client would see: message.new
in seq order without gap or duplicate, change numbers only ever going up, every ack before the
live copy of its message, and in the end the room as it is.
"""

from __future__ import annotations

import json
import random
import uuid

import pytest

from chat import protocol
from chat.catchup import ChangesAfter, MessagesAfter
from chat.delivery import CATCH_UP, MAX_INFLIGHT, SEND, RoomDelivery
from contract import events

RECONNECTED = {"type": "layer.reconnected"}


def message(seq: int, body: str = "", *, deleted: bool = False) -> events.MessageData:
    return {
        "id": seq,
        "room": "lobby",
        "seq": seq,
        "author": "alice",
        "body": "" if deleted else body or f"m{seq}",
        "created_at": "2026-01-01T00:00:00Z",
        "edited_at": None,
        "deleted_at": "2026-01-01T00:00:01Z" if deleted else None,
    }


def live(change: int, seq: int | None = None, kind: str = events.MESSAGE_CREATED) -> dict:
    """A room group's chat.event as the relay publishes it (seq: the message's)."""
    seq = change if seq is None else seq
    data = message(seq, deleted=kind == events.MESSAGE_DELETED)
    return {
        "type": "chat.event",
        "event": kind,
        "room": "lobby",
        "room_id": 1,
        "seq": seq,
        "change": change,
        "frame": events.message_frame(events.FRAME_TYPES[kind], data, change),
    }


def live_at(last_seq: int, last_change: int) -> RoomDelivery:
    """A delivery whose first replay ended at (last_seq, last_change)."""
    d = RoomDelivery()
    d.start_replay()
    d.resume(last_seq, last_change, (last_seq, last_change))
    d.catch_up((last_seq, last_change), 200).finish()
    assert d.replay_done(announce=True) is not None
    assert d.end_replay() is None
    return d


def post(client_id: uuid.UUID | None = None) -> protocol.SendMessage:
    return protocol.SendMessage(body="hi", client_id=client_id)


# --- live events -------------------------------------------------------------------------------
def test_live_events_are_sent_in_order_and_duplicates_by_change_dropped():
    d = live_at(3, 3)
    assert [d.live(live(c)) for c in (4, 5)] == [SEND, SEND]
    assert d.live(live(5)) is None  # a duplicate
    assert d.live(live(2)) is None  # older than the position
    edit = live(6, seq=2, kind=events.MESSAGE_EDITED)
    assert d.live(edit) is SEND
    assert (d.last_seq, d.last_change) == (5, 6)


def test_a_new_message_already_sent_by_a_catch_up_is_not_sent_again_but_counts():
    d = live_at(5, 4)  # message 5 went out in its latest state; change 5 is its creation
    assert d.live(live(5, seq=5)) is None
    assert d.last_change == 5
    assert d.live(live(6, seq=6)) is SEND


def test_a_gap_asks_for_one_catch_up_and_later_events_are_only_noted():
    d = live_at(3, 3)
    assert d.live(live(5)) is CATCH_UP  # change 4 was lost on the way
    assert d.live(live(6)) is None  # a catch-up is on its way: noted
    assert d.live(live(4)) is None
    assert d.missed_change == 6 and d.last_change == 3


def test_live_events_during_a_replay_that_do_not_follow_it_are_caught_up_before_it_ends():
    d = RoomDelivery()  # connecting: replaying from the start
    d.start_replay()
    d.resume(0, 0, (0, 0))  # the room was empty when the position was read
    d.catch_up((0, 0), 200).finish()
    assert d.live(live(2)) is None  # still replaying (change 1 was lost on the way)
    assert d.catch_up_owed()  # an event came in beyond the position, after a gap: another pass
    plan = d.catch_up((2, 2), 200)
    query = plan.next_query()
    assert query == MessagesAfter(after_seq=0, up_to_seq=2, limit=200)
    frames = [json.loads(f) for f in plan.frames([(message(1), 1), (message(2), 2)])]
    assert [f["message"]["seq"] for f in frames] == [1, 2]
    assert plan.next_query([(message(1), 1), (message(2), 2)]) == ChangesAfter(
        up_to_seq=0, after_change=0, limit=200
    )
    assert plan.next_query([]) is None
    plan.finish()
    assert not d.catch_up_owed()
    assert json.loads(d.replay_done(announce=True)) == {"type": "sync.done", "seq": 2, "change": 2}
    assert d.release_kept() is None  # the kept change 2 went out in the pass
    assert d.end_replay() is None
    assert d.live(live(2)) is None  # sent by the replay
    assert d.live(live(3)) is SEND


def kept_after_replay(d: RoomDelivery) -> list[tuple[int, str | None]]:
    """The replay is over (its pass and sync.done): (change, frame type) of the kept events
    it sends as live frames."""
    released = []
    while (event := d.release_kept()) is not None:
        released.append((event["change"], json.loads(event["frame"]).get("replay")))
    return released


def replay_from(at: tuple[int, int], newest: tuple[int, int], feed=()) -> RoomDelivery:
    """A delivery resuming from ``at`` whose pass reads the room at ``newest`` (and sends
    nothing: these tests look at what comes after); ``feed``: live events during the pass."""
    d = RoomDelivery(keep=4)
    d.start_replay()
    d.resume(*at, newest)
    for event in feed:
        assert d.live(event) is None
    d.catch_up(newest, 200).finish()
    return d


def test_live_events_that_follow_a_replay_end_it_after_one_pass_and_go_out_after_sync_done():
    d = RoomDelivery(keep=4)  # connecting: events are kept from the first
    assert d.live(live(11)) is None  # before the position was read: the pass sends it
    d.start_replay()
    d.resume(0, 0, (11, 11))
    plan = d.catch_up((11, 11), 200)
    for change in (12, 13, 14):  # while the pass runs
        assert d.live(live(change)) is None
    d.live(live(13))  # a duplicate
    assert plan.next_query() == MessagesAfter(after_seq=0, up_to_seq=11, limit=200)
    rows = [(message(seq), seq) for seq in range(1, 12)]
    assert len(list(plan.frames(rows))) == 11
    assert plan.next_query(rows) == ChangesAfter(up_to_seq=0, after_change=0, limit=200)
    assert plan.next_query([]) is None
    plan.finish()
    assert not d.catch_up_owed()  # no second pass: the kept events follow change 11
    assert json.loads(d.replay_done(announce=True)) == {
        "type": "sync.done",
        "seq": 11,
        "change": 11,
    }
    assert d.live(live(15)) is None  # while sync.done was written: kept too
    assert kept_after_replay(d) == [(12, None), (13, None), (14, None), (15, None)]
    assert (d.last_seq, d.last_change) == (15, 15)  # as live delivery moves it
    assert d.end_replay() is None
    assert d.live(live(15)) is None
    assert d.live(live(16)) is SEND


def test_kept_edits_and_deletes_follow_a_replay_like_new_messages():
    # The pass read (5, 6); 7 creates message 6, 8 edits message 2, 9 deletes message 6.
    edit = live(8, seq=2, kind=events.MESSAGE_EDITED)
    delete = live(9, seq=6, kind=events.MESSAGE_DELETED)
    d = replay_from((5, 6), (5, 6), [live(6, seq=5), live(7, seq=6), edit, delete])
    assert not d.catch_up_owed()
    assert kept_after_replay(d) == [(7, None), (8, None), (9, None)]  # 6 was the pass'
    assert (d.last_seq, d.last_change) == (6, 9)


def test_a_gap_before_or_among_the_kept_events_asks_for_another_pass():
    d = replay_from((3, 3), (3, 3), [live(5), live(6)])  # 4 was lost
    assert d.catch_up_owed()
    d.catch_up((6, 6), 200).finish()  # the second pass covers them
    assert not d.catch_up_owed() and kept_after_replay(d) == []
    d = replay_from((3, 3), (3, 3), [live(4), live(6), live(7)])  # 5 was lost
    assert d.catch_up_owed()
    d.catch_up((5, 5), 200).finish()  # read before 6 committed: 6 and 7 follow it
    assert not d.catch_up_owed()
    assert kept_after_replay(d) == [(6, None), (7, None)]


def test_more_live_events_than_a_replay_keeps_ask_for_another_pass_that_keeps_the_newest():
    d = replay_from((3, 3), (3, 3), [live(c) for c in range(4, 10)])  # 6 events, keep=4
    assert d.catch_up_owed()  # 4 and 5 were dropped
    d.catch_up((5, 5), 200).finish()  # a short pass up to them
    assert not d.catch_up_owed()
    assert [c for c, _ in kept_after_replay(d)] == [6, 7, 8, 9]


def test_a_gap_while_kept_events_go_out_ends_the_replay_with_a_catch_up():
    d = replay_from((3, 3), (3, 3), [live(4)])
    assert d.release_kept()["change"] == 4
    assert d.live(live(6)) is None  # 5 lost while 4 went out
    assert d.release_kept() is None
    assert d.end_replay() is CATCH_UP  # the next replay's pass covers 5 and 6
    assert d.catch_up_owed()


def test_a_redis_reconnect_during_a_replay_still_owes_one_pass():
    d = replay_from((3, 3), (3, 3), [live(4)])
    assert d.live(RECONNECTED) is None
    assert d.catch_up_owed()  # even though the kept event follows
    d.catch_up((4, 4), 200).finish()
    assert not d.catch_up_owed() and kept_after_replay(d) == []


def test_kept_events_are_not_sent_once_access_is_lost():
    d = replay_from((3, 3), (3, 3))
    assert d.access_changed() is None  # during the replay: it re-checks before sending
    assert d.live(live(4)) is None and d.live(live(5)) is None
    assert d.may_send() is None  # the caller re-checks access before each kept event...
    assert d.check_access()
    d.stop()  # ...and finds it lost
    assert d.release_kept() is None and d.kept is None
    assert d.replay_done(announce=True) is None
    assert d.end_replay() is None and d.live(live(6)) is None


def test_a_replay_for_an_access_check_sends_what_it_kept_without_a_pass():
    d = live_at(3, 3)
    assert d.access_changed() is CATCH_UP
    assert d.live(live(4)) is None  # kept until access is re-checked
    assert d.check_access()  # still allowed
    d.begin_replay()
    d.start_replay()
    assert not d.catch_up_owed()  # the kept event follows: no pass
    assert d.replay_done(announce=False) is None
    assert kept_after_replay(d) == [(4, None)]
    assert d.end_replay() is None


def test_kept_events_left_when_a_replay_ends_are_only_noted():
    d = replay_from((3, 3), (3, 3), [live(4)])
    assert d.end_replay(completed=False) is None  # failed: the next gap asks for a pass
    assert d.kept is None and d.live(live(5)) is CATCH_UP


def test_a_live_event_noted_while_sync_done_was_sent_starts_a_catch_up():
    d = RoomDelivery()
    d.start_replay()
    d.resume(None, None, (4, 4))
    d.catch_up((4, 4), 200).finish()
    assert d.replay_done(announce=True) is not None
    assert d.live(live(5)) is None  # arrives while sync.done is being written
    assert d.end_replay() is CATCH_UP
    assert d.catch_up_owed()  # the next replay's
    assert d.end_replay(completed=False) is None  # a failed replay starts nothing
    assert not d.catch_up_owed()


def test_an_access_change_during_a_replays_last_frame_starts_a_re_check():
    d = live_at(3, 3)
    d.begin_replay()
    d.start_replay()
    assert d.access_changed() is None  # the replay under way re-checks before each frame...
    assert d.end_replay() is CATCH_UP  # ...but it was sending its last: the next one does
    assert d.check_access()


def test_an_edit_committed_after_the_position_was_read_is_left_to_the_next_pass():
    d = live_at(3, 3)
    d.begin_replay()
    d.start_replay()
    plan = d.catch_up((3, 4), 200)  # change 4 edited message 1; 5 (message 2) came after
    query = plan.next_query()
    page = [(message(1, "edited"), 4), (message(2, "edited too"), 5)]
    assert [json.loads(f)["change"] for f in plan.frames(page)] == [4]
    assert plan.next_query(page) is None
    plan.finish()
    assert query == ChangesAfter(up_to_seq=3, after_change=3, limit=200)
    assert d.last_change == 4
    d.end_replay()
    assert d.live(live(5, seq=2, kind=events.MESSAGE_EDITED)) is SEND  # once, live


def test_redis_reconnecting_asks_for_an_access_check_and_one_pass():
    d = live_at(3, 3)
    assert d.live(RECONNECTED) is CATCH_UP
    assert d.access_dirty and d.catch_up_owed()
    assert d.may_send() is None  # only after a re-check
    assert d.check_access() and not d.check_access()
    assert d.may_send() is True
    d.begin_replay()
    d.start_replay()
    plan = d.catch_up((3, 3), 200)  # nothing was missed
    assert plan.next_query() == ChangesAfter(up_to_seq=3, after_change=3, limit=200)
    assert plan.next_query([]) is None
    plan.finish()
    # One pass, even in a room where nothing new comes (it used to wait for change 4).
    assert not d.catch_up_owed()
    assert d.replay_done(announce=False) is None
    assert d.end_replay() is None
    assert d.live(live(4)) is SEND


# --- access --------------------------------------------------------------------------------------
def test_an_access_change_holds_delivery_until_a_replay_rechecks():
    d = live_at(3, 3)
    assert d.access_changed() is CATCH_UP
    assert d.access_changed() is None  # a replay is already on its way
    assert d.live(live(4)) is None  # noted, not sent, until access is checked
    assert d.missed_change == 4


def test_nothing_is_delivered_once_access_is_lost():
    d = live_at(3, 3)
    d.stop()
    assert d.live(live(4)) is None
    assert d.live(live(9)) is None  # no catch-up either
    assert d.live(RECONNECTED) is None
    assert d.access_changed() is None
    assert not d.check_access() and d.may_send() is False
    assert not d.catch_up_owed()
    assert d.replay_done(announce=True) is None  # no sync.done
    assert d.end_replay() is None


# --- posts and held events -----------------------------------------------------------------------
def test_held_events_are_released_in_order_after_the_ack_that_covers_them():
    d = live_at(3, 3)
    first, second = uuid.uuid4(), uuid.uuid4()
    d.post_submitted(post(first), "ticket-1")
    d.post_submitted(post(second), "ticket-2")
    assert d.oldest_post() == (post(first), "ticket-1")
    for change in (4, 5, 6):  # someone else's 4, then the live copies of both posts
        assert d.live(live(change)) is None  # held
    assert d.release_next() is None  # nothing acked yet: 4 may be a post's copy
    ack = json.loads(d.post_acked(message(5), created=True, change=5))
    assert ack == {
        "type": "message.ack",
        "client_id": str(first),
        "created": True,
        "message": message(5),
    }
    released = []
    while (event := d.release_next()) is not None:
        released.append((event["change"], d.deliver(event)))
    assert released == [(4, SEND), (5, SEND)]  # 6 waits for the second ack
    assert d.oldest_post() == (post(second), "ticket-2")
    d.post_acked(message(6), created=True, change=6)
    assert d.deliver(d.release_next()) is SEND  # change 6
    assert d.release_next() is None
    assert d.held is None and d.inflight == ()  # nothing in flight: live events go straight
    assert d.live(live(7)) is SEND


def test_a_refused_post_releases_what_it_held_once_nothing_is_in_flight():
    d = live_at(3, 3)
    d.post_submitted(post(), "ticket")
    assert d.live(live(4)) is None
    assert d.post_refused() == post()
    assert d.acked_change == 0
    assert d.release_next()["change"] == 4  # nothing in flight: every held event goes
    assert d.release_next() is None and d.held is None


def test_the_post_window_is_bounded():
    d = live_at(0, 0)
    for i in range(MAX_INFLIGHT - 1):
        d.post_submitted(post(), f"ticket-{i}")
    assert d.backlog() is None
    d.post_submitted(post(), "last")
    assert d.backlog() == "ticket-0"  # wait for the oldest before reading more


# --- replays -------------------------------------------------------------------------------------
def test_replay_frames_follow_the_resume_rule():
    """New messages first, in seq order, without change; then edits and deletes of older
    messages in change order, with theirs; all marked replay; sync.done ends it."""
    d = RoomDelivery()
    d.start_replay()
    d.resume(2, 3, (5, 9))
    plan = d.catch_up((5, 9), 2)
    pages = {
        MessagesAfter(2, 5, 2): [(message(3, "edited later"), 8), (message(4), 4)],
        MessagesAfter(4, 5, 2): [(message(5), 6)],
        ChangesAfter(2, 3, 2): [(message(1, "edited"), 5), (message(2, deleted=True), 7)],
        ChangesAfter(2, 7, 2): [],
    }
    frames, query, queries = [], plan.next_query(), []
    while query is not None:
        queries.append(query)
        frames += [json.loads(f) for f in plan.frames(pages[query])]
        query = plan.next_query(pages[query])
    plan.finish()
    assert queries == list(pages)
    assert [(f["type"], f["message"]["seq"], f.get("change")) for f in frames] == [
        ("message.new", 3, None),
        ("message.new", 4, None),
        ("message.new", 5, None),
        ("message.edited", 1, 5),
        ("message.deleted", 2, 7),
    ]
    assert all(f["replay"] is True for f in frames)
    assert json.loads(d.replay_done(announce=False)) == {"type": "sync.done", "seq": 5, "change": 9}


def test_a_resume_is_capped_at_the_room_position_and_without_after_change_skips_edits():
    d = RoomDelivery()
    d.start_replay()
    d.resume(50, None, (10, 12))
    plan = d.catch_up((10, 12), 200)
    assert (d.last_seq, d.last_change) == (10, None)
    assert plan.next_query() is None  # nothing newer; no edit replay without after_change
    plan.finish()
    assert json.loads(d.replay_done(announce=True)) == {
        "type": "sync.done",
        "seq": 10,
        "change": 12,
    }


def test_a_catch_up_that_moved_nothing_ends_without_sync_done_unless_asked():
    d = live_at(3, 3)
    d.begin_replay()
    d.start_replay()
    d.catch_up((3, 3), 200).finish()
    assert d.replay_done(announce=False) is None
    assert d.replay_done(announce=True) is not None  # a client's sync always gets one


# --- the consumer's loop against a simulated room -----------------------------------------------
State = dict[int, tuple[str, bool]]  # seq -> (body, deleted)


class Room:
    """Messages by seq, each with the change number of its latest change, as the database
    holds them; ``published``: the live events in publication order; ``history``: the room
    as it was after each change."""

    def __init__(self) -> None:
        self.messages: dict[int, tuple[events.MessageData, int]] = {}
        self.seq = self.change = 0
        self.published: list[dict] = []
        self.history: list[tuple[int, State]] = [(0, {})]

    def commit(self, rng: random.Random, *, new: bool = False) -> tuple[int, int]:
        """One change: a new message (always when ``new``, else mostly), else an edit or a
        delete. (seq, change)."""
        self.change += 1
        if new or not self.messages or rng.random() < 0.6:
            self.seq += 1
            seq, kind, data = self.seq, events.MESSAGE_CREATED, message(self.seq)
        else:
            seq = rng.choice(list(self.messages))
            deleted = rng.random() < 0.3
            kind = events.MESSAGE_DELETED if deleted else events.MESSAGE_EDITED
            data = message(seq, f"m{seq} v{self.change}", deleted=deleted)
        self.messages[seq] = (data, self.change)
        event = live(self.change, seq=seq, kind=kind)
        event["frame"] = events.message_frame(events.FRAME_TYPES[kind], data, self.change)
        self.published.append(event)
        self.history.append((self.seq, self.state()))
        return seq, self.change

    def state(self) -> State:
        return {s: (d["body"], d["deleted_at"] is not None) for s, (d, _) in self.messages.items()}

    def read(self, query: MessagesAfter | ChangesAfter) -> list:
        rows = sorted(self.messages.items())
        if isinstance(query, MessagesAfter):
            page = [row for seq, row in rows if query.after_seq < seq <= query.up_to_seq]
        else:
            newer = [row for seq, row in rows if seq <= query.up_to_seq]
            page = sorted((r for r in newer if r[1] > query.after_change), key=lambda r: r[1])
        return page[: query.limit]


class Socket:
    """The room consumer's use of a RoomDelivery, synchronous: what it sends goes to
    ``frames``; between any two steps the room may change and publish, our own posts may be
    written and answered, and the layer may hand over (or lose) live events (``tick``)."""

    def __init__(self, rng: random.Random, room: Room, *, lossy: bool) -> None:
        self.rng, self.room, self.lossy = rng, room, lossy
        self.d = RoomDelivery()
        self.frames: list[dict] = []
        self.heard = len(room.published)  # earlier events were published before it listened
        self.catch_ups = 0  # catch-ups asked for and not yet run
        self.own: set[int] = set()  # the seqs of our posts
        self.quiet = False  # nothing more is written

    def send(self, frame: str) -> None:
        self.frames.append(json.loads(frame))

    def tick(self) -> None:
        if not self.quiet and self.rng.random() < 0.3:
            self.room.commit(self.rng)
        if not self.quiet and self.rng.random() < 0.2:
            self.post()
        while self.heard < len(self.room.published) and self.rng.random() < 0.7:
            event = self.room.published[self.heard]
            self.heard += 1
            if not (self.lossy and self.rng.random() < 0.1):  # else lost on the way
                self.act(self.d.live(event), event)
        if self.d.oldest_post() is not None and self.rng.random() < 0.4:
            self.answer()
        if self.rng.random() < 0.05:  # an access change that leaves access as it was
            self.act(self.d.access_changed(), {})

    def act(self, verdict: str | None, event: dict) -> None:
        if verdict is SEND:
            self.frames.append(json.loads(event["frame"]))
        elif verdict is CATCH_UP:
            self.catch_ups += 1

    def post(self) -> None:
        seq, change = self.room.commit(self.rng, new=True)  # written now, answered later
        self.own.add(seq)
        self.d.post_submitted(post(uuid.uuid4()), (seq, change))

    def answer(self) -> None:
        _, (seq, change) = self.d.oldest_post()
        self.send(self.d.post_acked(self.room.messages[seq][0], created=True, change=change))
        while (event := self.d.release_next()) is not None:
            self.act(self.d.deliver(event), event)

    def may_send(self) -> bool:
        """The consumer's check before each page and frame: re-check access if asked."""
        while self.d.check_access():
            pass  # access holds
        return self.d.may_send()

    def replay(self, resume: tuple | None, *, announce: bool = False) -> None:
        self.d.begin_replay()
        self.tick()  # waiting for its turn
        assert self.may_send()
        self.d.start_replay()
        if resume is not None:
            newest = self.resumed_at = (self.room.seq, self.room.change)
            self.d.resume(*resume, newest)
            self.catch_up(newest)
        while self.d.catch_up_owed():
            self.catch_up((self.room.seq, self.room.change))
        done = self.d.replay_done(announce=announce)
        if done is not None:
            self.send(done)
        self.tick()  # while sync.done is written
        while self.may_send() and (event := self.d.release_kept()) is not None:
            self.frames.append(json.loads(event["frame"]))
            self.tick()  # while it is written
        if self.d.end_replay() is CATCH_UP:
            self.catch_ups += 1

    def catch_up(self, newest: tuple[int, int]) -> None:
        plan = self.d.catch_up(newest, self.rng.choice([1, 2, 3, 200]))
        query = plan.next_query()
        while query is not None:
            self.tick()
            assert self.may_send()
            page = self.room.read(query)
            for frame in plan.frames(page):
                self.tick()
                assert self.may_send()
                self.send(frame)
            query = plan.next_query(page)
        plan.finish()

    def run_catch_ups(self) -> None:
        while self.catch_ups:
            self.catch_ups -= 1
            self.replay(None)

    def settle(self) -> None:
        """Nothing more is written; every post answered, every event heard, every catch-up
        run. A lost last event shows as a gap only later: Redis' reconnect announcement is
        that signal here."""
        self.quiet = True
        while self.d.oldest_post() is not None:
            self.answer()
        for event in self.room.published[self.heard :]:
            self.act(self.d.live(event), event)
        self.heard = len(self.room.published)
        self.act(self.d.live(RECONNECTED), RECONNECTED)
        self.run_catch_ups()


def apply(frames: list[dict], state: State, seq: int, own: set[int]) -> State:
    """What a client holding ``state`` up to ``seq`` holds after ``frames``; checks the
    delivery guarantee on the way."""
    state, change, acked = dict(state), 0, set()
    for frame in frames:
        kind = frame["type"]
        if kind == "message.ack":
            acked.add(frame["message"]["seq"])
            continue
        if kind == "sync.done":
            assert frame["change"] >= change and frame["seq"] == seq
            change = frame["change"]
            continue
        data = frame["message"]
        if "change" in frame:
            assert frame["change"] > change, "change numbers only go up"
            change = frame["change"]
        if kind == "message.new":
            assert data["seq"] == seq + 1, "message.new in seq order, no gap, no duplicate"
            seq = data["seq"]
            if not frame.get("replay") and seq in own:
                assert seq in acked, "a post's ack goes out before its live copy"
        else:
            assert data["seq"] <= seq, "an edit or delete follows its message"
        state[data["seq"]] = (data["body"], data["deleted_at"] is not None)
    return state


@pytest.mark.parametrize("lossy", [False, True], ids=["ordered", "lossy"])
@pytest.mark.parametrize("seed", range(100))
def test_the_consumers_loop_against_a_changing_room_converges(seed, lossy):
    rng = random.Random(seed)
    room = Room()
    for _ in range(rng.randrange(0, 12)):
        room.commit(rng)
    # Where the client stood: nothing (with or without edits), now, or an earlier position.
    at = rng.randrange(len(room.history))
    held_seq, held = room.history[at]
    resume, start = rng.choice(
        [
            ((0, 0), (0, {})),
            ((0, None), (0, {})),
            ((None, None), room.history[-1]),
            ((held_seq, at), (held_seq, held)),
        ]
    )
    sock = Socket(rng, room, lossy=lossy)
    sock.replay(resume, announce=True)
    assert [f["type"] for f in sock.frames].count("sync.done") == 1
    if resume[0] is None:  # from now: from the position the replay read
        start = room.history[sock.resumed_at[1]]
    for _ in range(40):
        sock.tick()
        sock.run_catch_ups()
    sock.settle()
    assert apply(sock.frames, start[1], start[0], sock.own) == room.state()


def test_room_events_count_like_edits_live_and_in_the_edit_replay():
    """A room event (member.joined, ...) is a change like an edit: live it moves the position by
    one and never the seq; replayed it comes among the edits in change order, with its change,
    and not past the position the pass read."""
    d = live_at(2, 2)
    joined = {**live(3), "event": events.ROOM_JOINED, "seq": None, "frame": "{}"}
    assert d.live(joined) is SEND and (d.last_seq, d.last_change) == (2, 3)
    assert d.live(joined) is None  # a duplicate
    assert d.live({**joined, "change": 5}) is CATCH_UP  # 4 is missing
    d.begin_replay()
    d.start_replay()
    plan = d.catch_up((2, 6), 200)
    assert plan.next_query() == ChangesAfter(up_to_seq=2, after_change=3, limit=200)
    left = events.RoomEventData(frame="member.left", fields={"member": {"user": "bob"}})
    page = [(message(1, "edited"), 4), (left, 5), (left, 7)]  # 7: after the position read
    frames = [json.loads(f) for f in plan.frames(page)]
    assert frames == [
        {"type": "message.edited", "replay": True, "change": 4, "message": message(1, "edited")},
        {"type": "member.left", "replay": True, "change": 5, "member": {"user": "bob"}},
    ]
    plan.finish()
    assert (d.last_seq, d.last_change) == (2, 6)
