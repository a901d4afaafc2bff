"""Subscriber workers as real processes against the real Redis and database.

The observable record is the database: analytics' behaviour records and aggregates (effects that
would double if an event were applied twice) and the broker's ledger, which names the worker
that committed each event.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Count, Sum
from django.test import override_settings

from analytics.models import BehaviourRecord, RoomMinute
from broker import streams
from broker.models import DeadLetter, ProcessedEvent
from chat import relay
from chat.models import Message, OutboxEvent
from contract.events import TOPIC_MESSAGE
from infra.redis_client import get_redis
from tests.support.procs import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(90)]


def post(room, author, *bodies: str) -> None:
    """Save messages through the ORM (it publishes like any write path; no rate limit)."""
    for body in bodies:
        Message.objects.create(room=room, author=author, body=body)


def analysed_seqs() -> list[int]:
    """Seqs of the messages analytics recorded, in the order it committed them."""
    rows = BehaviourRecord.objects.filter(type="message.created").order_by("id")
    return [r.payload["message"]["seq"] for r in rows]


def ledger(subscriber: str) -> list[ProcessedEvent]:
    return list(ProcessedEvent.objects.filter(subscriber=subscriber, topic=TOPIC_MESSAGE))


def seqs_of(rows: list[ProcessedEvent]) -> list[int]:
    seq_by_event = dict(OutboxEvent.objects.values_list("event_id", "seq"))
    return [seq_by_event[r.event_id] for r in sorted(rows, key=lambda r: r.pk)]


def pending(subscriber: str) -> int:
    return get_redis().xpending(TOPIC_MESSAGE, subscriber)["pending"]


def analysed_message_total() -> int:
    return RoomMinute.objects.aggregate(n=Sum("messages"))["n"] or 0


def test_a_subscriber_that_was_down_gets_exactly_what_it_missed(processes, lobby, alice):
    first = processes.worker("analytics")
    post(lobby, alice, "one", "two")
    with processes.explain():
        wait_until(lambda: analysed_seqs() == [1, 2], what="events 1 and 2 processed")

    first.stop()  # SIGTERM: finishes the event in hand, acknowledges, exits
    assert first.proc.returncode == 0, first.tail()
    post(lobby, alice, "three", "four")
    assert analysed_seqs() == [1, 2]

    processes.worker("analytics")
    with processes.explain():
        wait_until(lambda: len(analysed_seqs()) >= 4, what="events 3 and 4 processed")
        assert analysed_seqs() == [1, 2, 3, 4]
        by_worker = {}
        for row in ledger("analytics"):
            by_worker.setdefault(row.worker, []).append(row)
        assert sorted(seqs_of(rows) for rows in by_worker.values()) == [[1, 2], [3, 4]]
        assert analysed_message_total() == 4
        # Acknowledged right after the commit that the lines above observed.
        wait_until(lambda: pending("analytics") == 0, what="the batch acknowledged")


def test_a_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(
    processes, lobby, alice, tmp_path: Path
):
    post(lobby, alice, *[f"m{i}" for i in range(10)])
    marker = tmp_path / "batch-started"
    doomed = processes.worker(
        "slow_analytics", PARLEY_TEST_SLOW_MS="500", PARLEY_TEST_BATCH_MARKER=str(marker)
    )
    with processes.explain():
        wait_until(marker.exists, what="the slow worker to start its batch")
    assert marker.read_text() == "10"  # all ten in the batch it is working on

    doomed.stop(sig_kill=True)
    assert doomed.proc.returncode == -9
    assert analysed_seqs() == []  # nothing of the batch was committed
    assert pending("slow_analytics") == 10  # delivered, never acknowledged

    heir = processes.worker("slow_analytics", PARLEY_CLAIM_IDLE_MS="300")
    with processes.explain():
        wait_until(lambda: len(analysed_seqs()) >= 10, what="the batch reclaimed and applied")
        assert sorted(analysed_seqs()) == list(range(1, 11))
        assert analysed_message_total() == 10
        wait_until(lambda: pending("slow_analytics") == 0, what="the batch acknowledged")
        assert "reclaimed 10 abandoned entries" in heir.output()


def test_a_poison_event_is_dead_lettered_and_blocks_nothing(processes, lobby, alice, monkeypatch):
    # Posted before the worker starts: one batch, so the bad event is isolated from the others
    # within it, and they are applied before any retry of it.
    post(lobby, alice, "a", "poison pill", "b", "c")
    processes.worker("picky")
    with processes.explain():
        wait_until(
            lambda: DeadLetter.objects.count() == 1 and len(ledger("picky")) == 3,
            what="one dead letter and three processed events",
        )
    assert seqs_of(ledger("picky")) == [1, 3, 4]
    letter = DeadLetter.objects.get()
    assert (letter.subscriber, letter.topic, letter.attempts) == ("picky", TOPIC_MESSAGE, 3)
    assert letter.event["payload"]["message"]["body"] == "poison pill"
    assert "refusing poison" in letter.error
    # The events behind it went through before it was given up on.
    assert max(r.processed_at for r in ledger("picky")) < letter.failed_at
    # The dead letter is stored, then appended to the dead stream, then acknowledged.
    wait_until(
        lambda: get_redis().xlen(streams.dead_stream("picky")) == 1 and pending("picky") == 0,
        what="the poison event set aside and acknowledged",
    )

    call_command("redrive", "picky")  # the handler still refuses it: it stays dead
    letter.refresh_from_db()
    assert letter.redriven_at is None and letter.attempts == 4

    monkeypatch.setenv("PARLEY_TEST_ACCEPT_POISON", "1")  # the fix is deployed
    call_command("redrive", "picky")
    letter.refresh_from_db()
    assert letter.redriven_at is not None
    assert seqs_of(ledger("picky")) == [1, 3, 4, 2]


def test_two_workers_share_the_load_without_double_processing(processes, lobby, alice):
    env = {"PARLEY_TEST_SLOW_MS": "20", "PARLEY_BROKER_BATCH": "4"}
    processes.worker("slow_analytics", **env)
    processes.worker("slow_analytics", **env)
    post(lobby, alice, *[f"m{i}" for i in range(40)])
    with processes.explain():
        wait_until(lambda: len(analysed_seqs()) >= 40, what="40 events processed")
    assert sorted(analysed_seqs()) == list(range(1, 41))
    assert analysed_message_total() == 40
    shares = dict(
        ProcessedEvent.objects.filter(subscriber="slow_analytics")
        .values_list("worker")
        .annotate(n=Count("id"))
    )
    assert len(shares) == 2 and all(n > 0 for n in shares.values()), shares


def test_a_subscriber_defined_only_in_test_settings_receives_events(processes, lobby, alice):
    post(lobby, alice, "x", "y", "z")
    processes.worker("recorder")
    with processes.explain():
        wait_until(lambda: len(ledger("recorder")) == 3, what="the new subscriber's events")
    assert seqs_of(ledger("recorder")) == [1, 2, 3]
    # The producer knows nothing of it.
    found = subprocess.run(["grep", "-rl", "recorder", "chat/"], capture_output=True, text=True)
    assert found.stdout == ""


def test_a_worker_waits_out_a_redis_restart(processes, private_redis, lobby, alice):
    processes.worker("recorder", redis_url=private_redis.url)
    with override_settings(REDIS_URL=private_redis.url), processes.explain():
        post(lobby, alice, "before")
        wait_until(lambda: len(ledger("recorder")) == 1, what="the first event")

        private_redis.stop()
        post(lobby, alice, "during")  # saved; its event waits in the outbox
        private_redis.start()  # empty: the stream and the groups are gone
        relay.flush_pending()
        post(lobby, alice, "after")

        wait_until(lambda: len(ledger("recorder")) == 3, what="events after the restart")
        assert seqs_of(ledger("recorder")) == [1, 2, 3]
