"""Batch processing: one transaction per batch, with duplicates, already processed events and
poison events in the same batch, against the real Redis and database (in-process Worker).

Events are appended to the real stream the way the relay writes them (fields ``id``, ``type``,
``event``), so a test controls exactly what one XREADGROUP returns: ids, rooms, users, minutes,
and copies of the same event.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import OperationalError
from django.db.models import Sum
from django.test import override_settings

from analytics import aggregates
from analytics.models import BehaviourRecord, LatencyMinute, RoomMinute, UserMinute
from broker import streams
from broker.models import DeadLetter, ProcessedEvent, SubscriberState
from contract import events
from infra.redis_client import get_redis
from tests.support.inproc_worker import lag, run_until, worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

T0 = datetime(2026, 11, 26, 5, 40, tzinfo=UTC)


def message(body: str, *, room: str = "lobby", author: str = "alice", at: datetime = T0) -> dict:
    seq = abs(hash((body, room, author, at))) % 10**6
    data = {
        "id": seq,
        "room": room,
        "seq": seq,
        "author": author,
        "body": body,
        "created_at": at.isoformat(),
        "edited_at": None,
        "deleted_at": None,
    }
    return events.make_event(
        topic=events.TOPIC_MESSAGE,
        type=events.MESSAGE_CREATED,
        room=room,
        seq=seq,
        ts=at,
        payload={"change": seq, "message": data},
    )


def joined(user: str, *, room: str = "lobby", at: datetime = T0) -> dict:
    return events.room_event(
        events.ROOM_JOINED, room=room, user=user, role="member", ts=at, change=1
    )


def publish(*evs: dict) -> list[str]:
    """Append the events to their streams (as the relay does); return their stream ids."""
    client = get_redis()
    return [
        streams.decode(
            client.xadd(
                events.stream_key(e["topic"]),
                {"id": e["id"], "type": e["type"], "event": events.dumps(e)},
            )
        )
        for e in evs
    ]


def pending(subscriber: str, topic: str = events.TOPIC_MESSAGE) -> int:
    return get_redis().xpending(events.stream_key(topic), subscriber)["pending"]


def ledger_ids(subscriber: str) -> list[str]:
    return sorted(
        str(i)
        for i in ProcessedEvent.objects.filter(subscriber=subscriber).values_list(
            "event_id", flat=True
        )
    )


def big_batch():
    """BATCH large enough that everything published goes in one read."""
    return override_settings(PARLEY_BROKER={**settings.PARLEY_BROKER, "BATCH": 2000})


def test_duplicates_processed_and_poison_events_in_one_batch():
    """One read holds: an event already processed, a new event twice, two poison events and
    good events around them. The good ones commit (once) and are acknowledged in that same
    step; the poisons are retried, then dead-lettered; nothing is applied twice."""
    old = message("old")
    publish(old)
    with big_batch(), worker("picky") as w:
        run_until(w, lambda: ledger_ids("picky") == [old["id"]], what="the old event processed")

        fresh, poison1, poison2, last = (
            message("fresh"),
            message("poison one"),
            message("poison two"),
            message("last"),
        )
        ids = publish(old, fresh, poison1, fresh, poison2, last)
        w.step()  # one XREADGROUP: all six entries, one batch

        # The good events are committed once and acknowledged; the poisons wait for a retry.
        assert ledger_ids("picky") == sorted([old["id"], fresh["id"], last["id"]])
        assert pending("picky") == 2
        attempts = get_redis().hgetall(streams.attempts_key("picky"))
        assert attempts == {
            f"{events.TOPIC_MESSAGE}|{ids[2]}".encode(): b"1",
            f"{events.TOPIC_MESSAGE}|{ids[4]}".encode(): b"1",
        }
        assert SubscriberState.objects.get(subscriber="picky").processed == 3

        run_until(w, lambda: DeadLetter.objects.count() == 2, what="both poisons dead-lettered")
        run_until(w, lambda: pending("picky") == 0, what="the dead letters acknowledged")

    letters = DeadLetter.objects.order_by("stream_id")
    assert [str(d.event_id) for d in letters] == [poison1["id"], poison2["id"]]
    assert {d.attempts for d in letters} == {3}
    # The good events of the batch were committed before the poisons were given up on.
    done_at = max(ProcessedEvent.objects.filter(subscriber="picky").values_list("processed_at"))
    assert all(d.failed_at > done_at[0] for d in letters)
    assert ledger_ids("picky") == sorted([old["id"], fresh["id"], last["id"]])
    assert get_redis().hlen(streams.attempts_key("picky")) == 0


def test_aggregates_equal_the_event_counts_of_large_batches(monkeypatch):
    """Hundreds of events over rooms, users and minutes, with copies of some of them and one
    poison event, in batches of 2000 and then of 7 (bulk UPSERTs meet existing rows): every
    aggregate equals the count of distinct good events, and a full re-delivery changes nothing."""
    real_apply = aggregates.apply

    def refuse_poison(batch):
        if any("poison" in e["payload"].get("message", {}).get("body", "") for e in batch):
            raise ValueError("poison")
        real_apply(batch)

    monkeypatch.setattr(aggregates, "apply", refuse_poison)
    rooms, users = ["lobby", "garden", "attic"], ["alice", "bob", "carol", "dave", "erin"]
    good = [
        message(
            f"m{i}",
            room=rooms[i % 3],
            author=users[i % 5],
            at=T0 + timedelta(seconds=7 * i),  # about 6 minutes
        )
        for i in range(300)
    ]
    joins = [joined(u, room=r) for r in rooms for u in users]
    poison = message("poison", room="lobby", author="alice")

    def expected():
        rooms_n = Counter(e["room"] for e in good)
        users_n = Counter(e["payload"]["message"]["author"] for e in good)
        room_minutes = Counter(
            (e["room"], aggregates.minute_of(datetime.fromisoformat(e["ts"]))) for e in good
        )
        return rooms_n, users_n, room_minutes

    def check():
        rooms_n, users_n, room_minutes = expected()
        assert BehaviourRecord.objects.count() == len(good) + len(joins)
        assert ProcessedEvent.objects.filter(subscriber="analytics").count() == len(good) + len(
            joins
        )
        got_rooms = {
            r["room"]: r["n"] for r in RoomMinute.objects.values("room").annotate(n=Sum("messages"))
        }
        assert got_rooms == dict(rooms_n)
        got_users = {
            r["user"]: r["n"] for r in UserMinute.objects.values("user").annotate(n=Sum("messages"))
        }
        assert got_users == dict(users_n)
        got_minutes = {
            (room, minute): n
            for room, minute, n in RoomMinute.objects.values_list("room", "minute", "messages")
            if n
        }
        assert got_minutes == dict(room_minutes)
        assert RoomMinute.objects.aggregate(n=Sum("joins"))["n"] == len(joins)
        assert LatencyMinute.objects.aggregate(n=Sum("count"))["n"] == len(good)

    half = len(good) // 2
    publish(*good[:half], *joins, good[3], poison, good[10], *good[half:], good[half + 1])
    with big_batch(), worker("analytics") as w:
        run_until(w, lambda: DeadLetter.objects.count() == 1, what="the poison dead-lettered")
        run_until(w, lambda: lag("analytics") == 0, what="analytics caught up")
    check()

    publish(*good[:50])  # re-delivered copies, read in small batches this time
    with override_settings(PARLEY_BROKER={**settings.PARLEY_BROKER, "BATCH": 7}):
        with worker("analytics") as w:
            run_until(w, lambda: lag("analytics") == 0, what="the copies acknowledged")
    check()
    letter = DeadLetter.objects.get()
    assert str(letter.event_id) == poison["id"]
    assert not BehaviourRecord.objects.filter(event_id=uuid.UUID(poison["id"])).exists()


def test_a_failure_of_the_database_commits_and_acknowledges_nothing(monkeypatch):
    """An outage (not the event's fault) propagates out of the batch: nothing of it is
    committed, acknowledged or counted as an attempt; the worker applies it once it is back."""
    evs = [message(f"m{i}") for i in range(20)]
    publish(*evs)
    real_apply = aggregates.apply
    calls = []

    def outage(batch):
        calls.append(len(batch))
        real_apply(batch)
        raise OperationalError("database is locked")

    monkeypatch.setattr(aggregates, "apply", outage)
    with worker("analytics") as w:
        with pytest.raises(OperationalError):
            w.step()
        assert calls == [20]
        assert BehaviourRecord.objects.count() == 0
        assert not ProcessedEvent.objects.exists()
        assert pending("analytics") == 20
        assert get_redis().hlen(streams.attempts_key("analytics")) == 0

    monkeypatch.setattr(aggregates, "apply", real_apply)
    with worker("analytics") as w:  # takes over the entries the first one left pending
        claimed = get_redis().xautoclaim(
            events.TOPIC_MESSAGE, "analytics", w.consumer, 0, start_id="0-0", count=100
        )[1]
        w.process(events.TOPIC_MESSAGE, claimed)
    assert BehaviourRecord.objects.count() == 20
    assert RoomMinute.objects.get().messages == 20
    assert pending("analytics") == 0


def test_count_range_counts_in_slices_with_exclusive_bounds():
    client = get_redis()
    ids = [streams.decode(client.xadd("parley:test:count", {"n": i})) for i in range(2500)]
    assert streams.count_range(client, "parley:test:count", "-") == 2500
    assert streams.count_range(client, "parley:test:count", "-", page=1000) == 2500
    assert streams.count_range(client, "parley:test:count", "-", page=500) == 2500
    assert streams.count_range(client, "parley:test:count", f"({ids[999]}", page=1000) == 1500
    assert streams.count_range(client, "parley:test:count", ids[10], f"({ids[20]}", page=3) == 10
    assert streams.count_range(client, "parley:test:count", f"({ids[-1]}") == 0
    assert streams.count_range(client, "parley:test:missing", "-") == 0


class _RecordingStop(threading.Event):
    """The worker's stop event; records each linger and runs ``on_wait`` instead of waiting."""

    def __init__(self, on_wait) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.on_wait = on_wait

    def wait(self, timeout=None) -> bool:
        self.waits.append(timeout)
        self.on_wait()
        return self.is_set()


def test_a_trickle_lingers_so_the_next_events_are_read_as_one_batch():
    """After a read smaller than BATCH the worker waits LINGER_MS (interruptibly, on its stop
    event) so that what arrives meanwhile is applied in one transaction; a full read does not
    wait. Every event is still applied once."""
    later = [message(f"later {i}") for i in range(4)]
    conf = {**settings.PARLEY_BROKER, "BATCH": 5, "LINGER_MS": 250}
    with override_settings(PARLEY_BROKER=conf), worker("picky") as w:
        w.stop = _RecordingStop(on_wait=lambda: publish(*later) if not w.stop.waits[1:] else None)
        first = message("first")
        publish(first)
        w.step()  # reads 1 of at most 5: lingers, and the four others arrive meanwhile
        assert ledger_ids("picky") == [first["id"]] and w.stop.waits == [0.25]
        w.step()  # one read: the four
        assert ledger_ids("picky") == sorted([first["id"], *(e["id"] for e in later)])
        assert len(w.stop.waits) == 2

        full = [message(f"full {i}") for i in range(5)]
        publish(*full)
        w.step()  # a full read: no linger
        assert len(w.stop.waits) == 2
        assert SubscriberState.objects.get(subscriber="picky").processed == 10
