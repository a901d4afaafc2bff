"""After-commit flushes of one room running at once (the connect storm's shape): no error reaches
a writer, and the room's events reach Redis once each, in order (real Redis and database; on
PostgreSQL two flushers' row locks once deadlocked)."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.db import OperationalError, connections
from django.test import override_settings

from chat import actions, presence, relay
from chat.models import OutboxEvent
from contract import events
from database import sql
from tests.support.events import published_events

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

THREADS = 8
ROUNDS = 15


def _run_at_once(work, count: int) -> list[BaseException]:
    """Run ``work(i)`` on ``count`` threads started together; the errors they raised."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_after_commit_flushes_of_one_room_raise_nothing_and_keep_order(
    lobby, alice, bob
):
    # Each thread posts and records presence events in the room, one transaction each, so the
    # after-commit flushes of the room overlap and mark overlapping rows.
    def work(i: int) -> None:
        author = alice if i % 2 else bob
        for n in range(ROUNDS):
            actions.post_message(author=author, room=lobby, body=f"t{i} {n}")
            presence.record_connection(
                events.USER_CONNECTED, user=author, room=lobby, session=f"s{i}-{n}"
            )

    with override_settings(PARLEY={**settings.PARLEY, "RATE_LIMIT_MESSAGES": 10**6}):
        assert _run_at_once(work, THREADS) == []

    assert relay.pending_count() == 0
    seqs = [e["seq"] for e in published_events()]
    assert seqs == list(range(1, THREADS * ROUNDS + 1))  # once each, in order
    sessions = {e["payload"]["session"] for e in published_events(events.TOPIC_PRESENCE)}
    assert sessions == {f"s{i}-{n}" for i in range(THREADS) for n in range(ROUNDS)}


def test_flushers_racing_over_the_same_pending_rows_mark_each_once(lobby, alice, monkeypatch):
    # The relay's sweep and the fast path flushing the same backlog at once.
    monkeypatch.setattr(relay, "flush_after_commit", lambda room_id, written=None: None)
    with override_settings(PARLEY={**settings.PARLEY, "RATE_LIMIT_MESSAGES": 10**6}):
        for n in range(300):
            actions.post_message(author=alice, room=lobby, body=f"m{n}")
    monkeypatch.undo()
    assert relay.pending_count() == 300

    assert _run_at_once(lambda i: relay.flush_room(lobby.pk), THREADS) == []

    assert relay.pending_count() == 0
    assert [e["seq"] for e in published_events()] == list(range(1, 301))


def test_mark_published_keeps_the_first_stamp(lobby, alice):
    actions.post_message(author=alice, room=lobby, body="once")
    row = OutboxEvent.objects.get(topic=events.TOPIC_MESSAGE)
    first = row.published_at
    assert first is not None
    sql.mark_published([row.pk], first.replace(year=first.year + 1))
    row.refresh_from_db()
    assert row.published_at == first


def test_a_database_error_in_the_after_commit_flush_does_not_reach_the_writer(
    lobby, alice, monkeypatch, caplog
):
    def deadlock(ids, at):
        raise OperationalError("deadlock detected")

    monkeypatch.setattr(sql, "mark_published", deadlock)
    result = actions.post_message(author=alice, room=lobby, body="posted")  # raises nothing
    presence.record_connection(events.USER_CONNECTED, user=alice, room=lobby, session="s")

    assert result.message.body == "posted"
    assert "the relay will publish" in caplog.text
    # Redis has the events already; the rows stay pending until the relay's sweep marks them.
    assert relay.pending_count() == 2
    monkeypatch.undo()
    relay.flush_pending()
    assert relay.pending_count() == 0
    assert [e["seq"] for e in published_events()] == [1]  # the repeat dropped by the guard
