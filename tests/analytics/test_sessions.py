"""Connection sessions from batches of user.connected / user.disconnected events
(analytics/sessions.py): the rows they leave, and a batch's statements not growing with it.

Batches are folded by the real ``aggregates.apply`` (and the broker's Processor, for its ledger)
on the suite's database; events are built by the contract's own constructor.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from analytics import aggregates, sessions
from analytics.models import BehaviourRecord, ConnectionSession, RoomMinute
from broker import registry
from broker.processing import Entry, Processor
from contract import events
from infra.redis_client import get_redis

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
IN, OUT = events.USER_CONNECTED, events.USER_DISCONNECTED


def _event(type_: str, session: str, seconds: float, *, user: str = "alice") -> events.Event:
    at = T0 + timedelta(seconds=seconds)
    return events.connection(type_, room="lobby", user=user, session=session, ts=at)


def _apply(batch: list[events.Event]) -> None:
    with transaction.atomic():  # as the broker runs it: inside the batch's transaction
        aggregates.apply(batch)


def _rows() -> dict[str, tuple]:
    return {
        s.session: (s.user, s.room, s.connected_at, s.disconnected_at, s.duration_s)
        for s in ConnectionSession.objects.all()
    }


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _statements(batch: list[events.Event]) -> int:
    with CaptureQueriesContext(connection) as queries:
        _apply(batch)
    return len(queries)


def _mixed_batch(tag: str, n: int) -> list[events.Event]:
    """``n`` events: half disconnects of sessions an earlier batch opened, a quarter connects
    and a quarter disconnects of new sessions."""
    _apply([_event(IN, f"{tag}-old-{i}", 1) for i in range(n // 2)])
    batch = [_event(OUT, f"{tag}-old-{i}", 5) for i in range(n // 2)]
    batch += [_event(IN, f"{tag}-new-{i}", 2) for i in range(n // 4)]
    batch += [_event(OUT, f"{tag}-new-{i}", 3) for i in range(n // 4)]
    return batch


@pytest.mark.django_db
def test_a_batch_of_connection_events_costs_the_same_statements_whatever_its_size():
    small = _statements(_mixed_batch("small", 8))
    large = _statements(_mixed_batch("large", 100))

    assert large == small  # not one more per event
    # Savepoint, erasure lookup, records, room minutes, the sessions' SELECT, INSERT and
    # UPDATE (one statement run for each row), release.
    assert large <= 8
    rows = _rows()
    assert len(rows) == (4 + 2) + (50 + 25)
    assert all(row[3] is not None for row in rows.values())
    assert rows["large-old-7"] == ("alice", "lobby", _at(1), _at(5), 4.0)
    assert rows["large-new-7"] == ("alice", "lobby", _at(2), _at(3), 1.0)


@pytest.mark.django_db
def test_connect_and_disconnect_in_one_batch_make_one_complete_row():
    _apply([_event(IN, "s1", 0), _event(IN, "s2", 1, user="bob"), _event(OUT, "s1", 2.5)])

    assert _rows() == {
        "s1": ("alice", "lobby", _at(0), _at(2.5), 2.5),
        "s2": ("bob", "lobby", _at(1), None, None),
    }
    assert RoomMinute.objects.get().connects == 2


@pytest.mark.django_db
def test_a_disconnect_in_a_later_batch_completes_the_row():
    _apply([_event(IN, "s1", 0), _event(IN, "s2", 1)])
    _apply([_event(OUT, "s2", 4), _event(IN, "s3", 5)])
    _apply([_event(OUT, "s1", 10), _event(OUT, "s3", 5.25)])

    assert _rows() == {
        "s1": ("alice", "lobby", _at(0), _at(10), 10.0),
        "s2": ("alice", "lobby", _at(1), _at(4), 3.0),
        "s3": ("alice", "lobby", _at(5), _at(5.25), 0.25),
    }


@pytest.mark.django_db
def test_a_disconnect_applied_before_its_connect_still_makes_the_row():
    # A connect that failed and was retried after its disconnect went through.
    _apply([_event(OUT, "s1", 7)])
    assert _rows() == {"s1": ("alice", "lobby", None, _at(7), None)}

    _apply([_event(IN, "s1", 2)])
    assert _rows() == {"s1": ("alice", "lobby", _at(2), _at(7), 5.0)}


@pytest.mark.django_db
def test_a_redelivered_batch_changes_nothing():
    batch = [_event(IN, "s1", 0), _event(IN, "s2", 1), _event(OUT, "s1", 2)]
    later = [_event(OUT, "s2", 3)]
    processor = Processor(registry.get("analytics"), get_redis(), worker="test")
    entries = [
        Entry(events.TOPIC_PRESENCE, f"1-{i}", event) for i, event in enumerate(batch + later)
    ]
    assert processor.commit(entries[:3]) == 3
    assert processor.commit(entries[3:]) == 1
    first = _rows()

    # The stream delivers them all again (a worker died before its XACK): the ledger applies
    # none of them, and the rows stay as they were.
    assert processor.commit(entries) == 0
    assert processor.commit(entries[2:]) == 0

    assert (
        _rows()
        == first
        == {
            "s1": ("alice", "lobby", _at(0), _at(2), 2.0),
            "s2": ("alice", "lobby", _at(1), _at(3), 2.0),
        }
    )
    assert BehaviourRecord.objects.count() == 4
    assert RoomMinute.objects.get().connects == 2


@pytest.mark.django_db
def test_the_same_times_folded_twice_leave_the_same_rows():
    seen = [
        sessions.Seen("s1", IN, "alice", "lobby", _at(0)),
        sessions.Seen("s1", OUT, "alice", "lobby", _at(1)),
        sessions.Seen("s2", IN, "bob", "lobby", _at(2)),
    ]
    with transaction.atomic():
        sessions.apply(seen)
    first = _rows()
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        sessions.apply(seen + seen)

    assert _rows() == first
    # Nothing changed, nothing written (the SELECT ... FOR UPDATE aside).
    assert not any(" SET " in q["sql"] for q in queries)
    assert len(first) == 2 and first["s1"][4] == 1.0


@pytest.mark.django_db(transaction=True)
def test_a_session_another_worker_inserts_meanwhile_is_completed():
    """Two workers: one inserts the session's row (its connect) and has not committed when the
    other, with the disconnect, finds no row and inserts; that insert skips the row once the
    first commits, and the second worker completes it."""
    inserted, errors = threading.Event(), []

    def first_worker() -> None:
        try:
            with transaction.atomic():
                sessions.apply([sessions.Seen("s1", IN, "alice", "lobby", _at(0))])
                inserted.set()
                _wait_for_a_blocked_writer()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            inserted.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_worker)
    thread.start()
    assert inserted.wait(10)
    with transaction.atomic():  # SQLite: waits at BEGIN for the first to commit
        sessions.apply([sessions.Seen("s1", OUT, "alice", "lobby", _at(3))])
    thread.join(10)

    assert not errors
    assert _rows() == {"s1": ("alice", "lobby", _at(0), _at(3), 3.0)}


def _wait_for_a_blocked_writer() -> None:
    """PostgreSQL: until another connection waits for a lock this transaction holds (the second
    worker's INSERT). SQLite's second writer waits at BEGIN, before reading anything."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for _ in range(2000):
            # Activity is read once per transaction unless the snapshot is cleared.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            cursor.execute("SELECT pg_sleep(0.005)")
    raise TimeoutError("the second worker never waited for the first")
