"""chat.delivery.RoomDelivery without a server: events in, verdicts and frames out, one rule
per test."""

from __future__ import annotations

import json
import uuid

from chat import events, protocol
from chat.delivery import (
    CATCH_UP,
    MAX_INFLIGHT,
    SEND,
    ChangesAfter,
    MessagesAfter,
    RoomDelivery,
)

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
    d.end_replay()
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


def test_live_events_during_a_replay_are_noted_and_caught_up_before_it_ends():
    d = RoomDelivery()  # connecting: replaying from the start
    assert d.live(live(1)) is None
    d.start_replay()
    d.resume(0, 0, (0, 0))  # the room was empty when the position was read
    d.catch_up((0, 0), 200).finish()
    assert d.live(live(2)) is None  # still replaying
    assert d.catch_up_owed()  # events came in beyond the position: another pass
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
    d.end_replay()
    assert d.live(live(2)) is None  # sent by the replay
    assert d.live(live(3)) is SEND


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
    d.end_replay()
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
