"""The analytics subscriber through the real write paths and an in-process broker Worker.

Events are produced by the real actions (post_message, join_room, leave_room, create_room) and by
real WebSocket connects/disconnects, published after commit through the outbox, read back from
the real Redis Streams by the analytics consumer group and folded into the aggregates.
"""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async
from django.db.models import Sum

from analytics import aggregates
from analytics.models import (
    BehaviourRecord,
    ConnectionSession,
    LatencyMinute,
    RoomMinute,
    UserMinute,
)
from broker import streams
from broker.models import ProcessedEvent, SubscriberState
from chat import actions, relay
from chat.models import OutboxEvent
from contract import events
from infra.redis_client import get_redis
from tests.support.inproc_worker import drain, lag, run_until, worker
from tests.support.ws import open_socket

SUB = "analytics"


# --- helpers -------------------------------------------------------------------------------------
def _activity(alice, bob, lobby):
    """Real actions in two rooms. Returns the room counters they should produce.

    lobby (fixture): alice created it (joined), bob joined.
    """
    actions.post_message(author=alice, room=lobby, body="one")
    actions.post_message(author=alice, room=lobby, body="two")
    actions.post_message(author=bob, room=lobby, body="three")
    assert actions.leave_room(user=bob, room=lobby)
    garden = actions.create_room(creator=bob, slug="garden", title="Garden")
    actions.join_room(user=alice, room=garden)
    actions.post_message(author=alice, room=garden, body="four")
    return {
        "lobby": {"messages": 3, "joins": 2, "leaves": 1, "connects": 0},
        "garden": {"messages": 1, "joins": 2, "leaves": 0, "connects": 0},
    }


def _room_totals(room: str) -> dict[str, int]:
    sums = RoomMinute.objects.filter(room=room).aggregate(
        messages=Sum("messages"), joins=Sum("joins"), leaves=Sum("leaves"), connects=Sum("connects")
    )
    return {k: v or 0 for k, v in sums.items()}


def _user_messages() -> dict[str, int]:
    return {
        row["user"]: row["n"]
        for row in UserMinute.objects.values("user").annotate(n=Sum("messages"))
    }


def _latency_count() -> int:
    return LatencyMinute.objects.aggregate(n=Sum("count"))["n"] or 0


def _snapshot() -> dict:
    """Everything analytics writes, in comparable form."""
    return {
        "records": sorted(
            str(e) for e in BehaviourRecord.objects.values_list("event_id", flat=True)
        ),
        "rooms": sorted(
            RoomMinute.objects.values_list(
                "room", "minute", "messages", "joins", "leaves", "connects"
            )
        ),
        "users": sorted(UserMinute.objects.values_list("user", "minute", "messages")),
        "latency": sorted(LatencyMinute.objects.values_list("minute", "count")),
        "sessions": sorted(
            ConnectionSession.objects.values_list("session", "connected_at", "disconnected_at")
        ),
        "ledger": ProcessedEvent.objects.filter(subscriber=SUB).count(),
    }


def _stream_ids_of(event_id: uuid.UUID, topic: str) -> list[str]:
    return [
        streams.decode(sid)
        for sid, fields in get_redis().xrange(events.stream_key(topic))
        if fields[b"id"].decode() == str(event_id)
    ]


def _republish(row: OutboxEvent) -> None:
    """Put an already published outbox row on its stream once more (a relay re-send)."""
    get_redis().delete(relay.published_key(events.stream_key(row.topic)))
    assert relay.publish_rows([row]) == 1
    assert len(_stream_ids_of(row.event_id, row.topic)) == 2


# --- behaviour records ---------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_one_behaviour_record_per_event_with_its_fields(alice, bob, lobby):
    _activity(alice, bob, lobby)
    # Analytics subscribes to messages, rooms and presence; bob's leave also recorded an
    # access.revoked (chat.access), which is not its business.
    outbox = {row.event_id: row for row in OutboxEvent.objects.exclude(topic=events.TOPIC_ACCESS)}
    assert len(outbox) == 9

    drain(SUB)

    records = {r.event_id: r for r in BehaviourRecord.objects.all()}
    assert set(records) == set(outbox)
    for event_id, record in records.items():
        event = outbox[event_id].event
        assert record.topic == event["topic"]
        assert record.type == event["type"]
        assert record.room == event["room"]
        kept = dict(event["payload"])  # all of it but a message's body (analytics.erasure)
        if "message" in kept:
            kept["message"] = {k: v for k, v in kept["message"].items() if k != "body"}
        assert record.payload == kept
        assert record.occurred_at.isoformat().replace("+00:00", "Z") == event["ts"]
        assert record.latency_ms >= 0
        assert record.processed_at >= record.occurred_at
    users = {(r.type, r.room, r.user) for r in records.values()}
    assert users == {
        (events.ROOM_JOINED, "lobby", "alice"),
        (events.ROOM_JOINED, "lobby", "bob"),
        (events.MESSAGE_CREATED, "lobby", "alice"),
        (events.MESSAGE_CREATED, "lobby", "bob"),
        (events.ROOM_LEFT, "lobby", "bob"),
        (events.ROOM_JOINED, "garden", "bob"),
        (events.ROOM_JOINED, "garden", "alice"),
        (events.MESSAGE_CREATED, "garden", "alice"),
    }
    # The ledger and the counters agree with the records.
    assert ProcessedEvent.objects.filter(subscriber=SUB).count() == 9
    assert SubscriberState.objects.get(subscriber=SUB).processed == 9


@pytest.mark.django_db(transaction=True)
def test_room_user_and_latency_minutes(alice, bob, lobby):
    expected = _activity(alice, bob, lobby)

    drain(SUB)

    for room, counts in expected.items():
        assert _room_totals(room) == counts, room
    assert _user_messages() == {"alice": 3, "bob": 1}
    for row in RoomMinute.objects.all():
        assert row.minute.second == row.minute.microsecond == 0
    # Push latency: message events only, each in one fine histogram bucket.
    assert _latency_count() == 4
    for row in LatencyMinute.objects.all():
        assert all(int(key) >= -1 for key in row.buckets)
        assert sum(row.buckets.values()) == row.count
        assert 0 <= row.max_ms <= row.total_ms
    message_latencies = BehaviourRecord.objects.filter(type=events.MESSAGE_CREATED).values_list(
        "latency_ms", flat=True
    )
    assert LatencyMinute.objects.aggregate(t=Sum("total_ms"))["t"] == pytest.approx(
        sum(message_latencies)
    )


@pytest.mark.django_db(transaction=True)
def test_later_events_add_to_the_same_minutes(alice, bob, lobby):
    actions.post_message(author=alice, room=lobby, body="first")
    drain(SUB)
    assert _room_totals("lobby")["messages"] == 1

    actions.post_message(author=alice, room=lobby, body="second")
    actions.post_message(author=bob, room=lobby, body="third")
    drain(SUB)

    assert _room_totals("lobby") == {"messages": 3, "joins": 2, "leaves": 0, "connects": 0}
    assert _user_messages() == {"alice": 2, "bob": 1}
    assert _latency_count() == 3
    assert BehaviourRecord.objects.count() == OutboxEvent.objects.count() == 5


# --- connections (real WebSockets) ---------------------------------------------------------------
def _sessions() -> dict[str, ConnectionSession]:
    return {s.user: s for s in ConnectionSession.objects.all()}


def _presence_sessions() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in OutboxEvent.objects.filter(topic=events.TOPIC_PRESENCE):
        out.setdefault(row.type, set()).add(row.event["payload"]["session"])
    return out


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_connection_sessions_from_real_sockets(alice, bob, lobby):
    alice_sock, frame = await open_socket(alice, "lobby")
    assert frame["type"] == "sync.done"
    bob_sock, frame = await open_socket(bob, "lobby")
    assert frame["type"] == "sync.done"
    try:
        await alice_sock.disconnect()  # returns once the consumer's disconnect() has finished
        await database_sync_to_async(drain)(SUB)

        sessions = await database_sync_to_async(_sessions)()
        assert set(sessions) == {"alice", "bob"}
        closed, open_ = sessions["alice"], sessions["bob"]
        assert closed.room == open_.room == "lobby"
        assert closed.connected_at is not None and closed.disconnected_at is not None
        assert closed.disconnected_at >= closed.connected_at
        assert closed.duration_s == pytest.approx(
            (closed.disconnected_at - closed.connected_at).total_seconds()
        )
        assert closed.duration_s >= 0
        assert open_.connected_at is not None
        assert open_.disconnected_at is None and open_.duration_s is None
        published = await database_sync_to_async(_presence_sessions)()
        assert published[events.USER_CONNECTED] == {closed.session, open_.session}
        assert published[events.USER_DISCONNECTED] == {closed.session}
        assert (await database_sync_to_async(_room_totals)("lobby"))["connects"] == 2
    finally:
        await bob_sock.disconnect()

    await database_sync_to_async(drain)(SUB)
    sessions = await database_sync_to_async(_sessions)()
    assert len(sessions) == 2
    bob_session = sessions["bob"]
    assert bob_session.disconnected_at is not None
    assert bob_session.duration_s == pytest.approx(
        (bob_session.disconnected_at - bob_session.connected_at).total_seconds()
    )
    # A disconnect is not a connect: still two, and each socket's pair is recorded once.
    assert (await database_sync_to_async(_room_totals)("lobby"))["connects"] == 2
    records = await database_sync_to_async(
        lambda: BehaviourRecord.objects.filter(topic=events.TOPIC_PRESENCE).count()
    )()
    assert records == 4


# --- exactly-once effects ------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_republished_event_is_counted_once(alice, bob, lobby):
    expected = _activity(alice, bob, lobby)
    drain(SUB)
    before = _snapshot()

    message_row = OutboxEvent.objects.filter(topic=events.TOPIC_MESSAGE).order_by("id").first()
    join_row = OutboxEvent.objects.filter(type=events.ROOM_JOINED).order_by("id").first()
    _republish(message_row)
    _republish(join_row)
    assert lag(SUB) == 2  # the stream holds the copies, not yet delivered

    drain(SUB)

    assert _snapshot() == before
    for room, counts in expected.items():
        assert _room_totals(room) == counts
    assert _user_messages() == {"alice": 3, "bob": 1}
    assert _latency_count() == 4
    client = get_redis()
    for topic in (events.TOPIC_MESSAGE, events.TOPIC_ROOM):
        assert client.xpending(topic, SUB)["pending"] == 0  # the copies were acknowledged
    assert SubscriberState.objects.get(subscriber=SUB).processed == 9


@pytest.mark.django_db(transaction=True)
def test_an_event_twice_in_one_batch_is_counted_once(alice, lobby):
    actions.post_message(author=alice, room=lobby, body="twice")
    row = OutboxEvent.objects.get(topic=events.TOPIC_MESSAGE)
    _republish(row)  # before any processing: both copies arrive in the same read

    drain(SUB)

    assert BehaviourRecord.objects.filter(event_id=row.event_id).count() == 1
    assert _room_totals("lobby")["messages"] == 1
    assert _user_messages() == {"alice": 1}
    assert _latency_count() == 1
    assert ProcessedEvent.objects.filter(subscriber=SUB, event_id=row.event_id).count() == 1


# --- failures ------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_handler_failure_rolls_back_the_whole_batch(alice, lobby, monkeypatch):
    actions.post_message(author=alice, room=lobby, body="one")
    actions.post_message(author=alice, room=lobby, body="two")
    real_apply = aggregates.apply
    written_before_raising: list[int] = []

    def apply_then_fail(batch):
        real_apply(batch)
        written_before_raising.append(BehaviourRecord.objects.count())
        raise RuntimeError("analytics broke after writing")

    monkeypatch.setattr(aggregates, "apply", apply_then_fail)
    client = get_redis()
    with worker(SUB) as w:
        w.step()  # reads both streams; every commit fails

        # The handler did write (inside the transaction) before it raised ...
        assert written_before_raising and max(written_before_raising) == 2
        # ... and none of it survived: no record, no aggregate, no ledger row, no counter.
        assert BehaviourRecord.objects.count() == 0
        assert RoomMinute.objects.count() == UserMinute.objects.count() == 0
        assert LatencyMinute.objects.count() == ConnectionSession.objects.count() == 0
        assert not ProcessedEvent.objects.filter(subscriber=SUB).exists()
        assert not SubscriberState.objects.filter(subscriber=SUB, processed__gt=0).exists()
        # The entries are still pending (delivered, unacknowledged) with one failed attempt each.
        assert client.xpending(events.TOPIC_MESSAGE, SUB)["pending"] == 2
        assert client.xpending(events.TOPIC_ROOM, SUB)["pending"] == 2
        attempts = client.hgetall(streams.attempts_key(SUB))
        assert len(attempts) == 4 and set(attempts.values()) == {b"1"}

        # Fixed: the retries apply every event exactly once.
        monkeypatch.setattr(aggregates, "apply", real_apply)
        run_until(w, lambda: lag(SUB) == 0, what="analytics retried and caught up")

    assert BehaviourRecord.objects.count() == 4
    assert _room_totals("lobby") == {"messages": 2, "joins": 2, "leaves": 0, "connects": 0}
    assert _user_messages() == {"alice": 2}
    assert _latency_count() == 2
    assert ProcessedEvent.objects.filter(subscriber=SUB).count() == 4
    assert client.hlen(streams.attempts_key(SUB)) == 0
