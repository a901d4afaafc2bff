"""``manage.py consumers``: each subscriber's lag, pending, dead letters, processed and workers.

Runs against both Redis code paths: Redis >= 7 reports a group's ``lag`` itself, older servers
(the suite's embedded 6.2) make broker.stats count the undelivered entries.
"""

from __future__ import annotations

import io
import json
from datetime import datetime

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from broker import groups, registry, streams
from broker.models import DeadLetter
from chat import actions
from contract import events
from infra.redis_client import get_redis
from tests.support.inproc_worker import drain, worker

KEYS = {
    "lag",
    "pending",
    "dead",
    "processed",
    "last_processed_at",
    "workers",
    "republished",
    "redis_losses",
}


def _stats() -> dict:
    out = io.StringIO()
    call_command("consumers", "--json", stdout=out)
    return json.loads(out.getvalue())


def _table() -> list[str]:
    out = io.StringIO()
    call_command("consumers", stdout=out)
    return out.getvalue().splitlines()


def _retained(name: str) -> int:
    client = get_redis()
    return sum(client.xlen(events.stream_key(t)) for t in registry.get(name).topics)


def _post(author, room, n: int) -> None:
    for i in range(n):
        actions.post_message(author=author, room=room, body=f"message {i}")


@pytest.mark.django_db(transaction=True)
def test_json_has_every_subscriber_with_every_key():
    stats = _stats()

    assert set(stats) == set(settings.PARLEY_SUBSCRIBERS)
    for name, s in stats.items():
        assert set(s) == KEYS, name
        assert s == {
            "lag": 0,
            "pending": 0,
            "dead": 0,
            "processed": 0,
            "last_processed_at": None,
            "workers": [],
            "republished": 0,
            "redis_losses": 0,
        }


@pytest.mark.django_db(transaction=True)
def test_before_any_worker_ran_lag_is_everything_retained(alice, lobby):
    _post(alice, lobby, 3)  # plus the lobby fixture's two room.joined

    stats = _stats()

    for name, sub in registry.subscribers().items():
        expected = _retained(name) if sub.start == "oldest" else 0
        assert stats[name]["lag"] == expected, name
        assert stats[name]["pending"] == stats[name]["processed"] == 0
    assert stats["analytics"]["lag"] == 5  # 3 messages + 2 joins
    assert stats["recorder"]["lag"] == 3  # chat.message only
    assert stats["mentions"]["lag"] == 0  # start: "now" sees none of the past


@pytest.mark.django_db(transaction=True)
def test_lag_counts_undelivered_and_unacknowledged(alice, lobby):
    _post(alice, lobby, 4)
    client = get_redis()
    groups.ensure_groups(client, [registry.get("recorder")])
    assert _stats()["recorder"]["lag"] == 4  # a group that has read nothing yet

    # Delivered to a consumer, not acknowledged: pending, and still lag.
    client.xreadgroup("recorder", "someone", {events.TOPIC_MESSAGE: ">"}, count=3)
    stats = _stats()["recorder"]
    assert stats["pending"] == 3
    assert stats["lag"] == 4

    client.xack(
        events.TOPIC_MESSAGE,
        "recorder",
        *[streams.decode(sid) for sid, _ in client.xrange(events.TOPIC_MESSAGE, count=2)],
    )
    stats = _stats()["recorder"]
    assert stats["pending"] == 1
    assert stats["lag"] == 2


@pytest.mark.django_db(transaction=True)
def test_after_a_worker_processed_everything(alice, lobby):
    _post(alice, lobby, 3)
    before = timezone.now()

    drain("recorder")
    drain("analytics")

    stats = _stats()
    for name, processed in (("recorder", 3), ("analytics", 5)):
        s = stats[name]
        assert (s["lag"], s["pending"], s["processed"], s["dead"]) == (0, 0, processed, 0), name
        assert datetime.fromisoformat(s["last_processed_at"]) >= before
        assert s["workers"] == []  # the in-process workers deregistered when they stopped
    # The others are untouched.
    assert stats["picky"]["lag"] == 3 and stats["picky"]["processed"] == 0

    _post(alice, lobby, 2)
    stats = _stats()
    assert stats["recorder"]["lag"] == 2
    assert stats["analytics"]["lag"] == 2
    assert stats["recorder"]["processed"] == 3


@pytest.mark.django_db(transaction=True)
def test_start_now_subscriber_lags_only_behind_new_events(alice, lobby):
    _post(alice, lobby, 2)
    groups.ensure_groups(get_redis(), [registry.get("mentions")])
    assert _stats()["mentions"]["lag"] == 0

    _post(alice, lobby, 1)
    assert _stats()["mentions"]["lag"] == 1


@pytest.mark.django_db(transaction=True)
def test_a_live_worker_is_listed_until_it_stops():
    with worker("recorder", consumer="stats-test-1") as w:
        w._heartbeat()
        with worker("recorder", consumer="stats-test-2") as other:
            other.step()  # a step heartbeats first
            stats = _stats()
            assert stats["recorder"]["workers"] == ["stats-test-1", "stats-test-2"]
        assert _stats()["recorder"]["workers"] == ["stats-test-1"]
        # Only that subscriber's workers.
        assert all(not s["workers"] for n, s in _stats().items() if n != "recorder")
    assert _stats()["recorder"]["workers"] == []


@pytest.mark.django_db(transaction=True)
def test_dead_letters_count_until_redriven():
    def letter(**extra):
        return DeadLetter.objects.create(
            subscriber="picky",
            topic=events.TOPIC_MESSAGE,
            stream_id="1-0",
            raw="not json",
            error="boom",
            attempts=3,
            **extra,
        )

    letter()
    letter()
    letter(redriven_at=timezone.now())

    stats = _stats()
    assert stats["picky"]["dead"] == 2
    assert all(s["dead"] == 0 for n, s in stats.items() if n != "picky")


@pytest.mark.django_db(transaction=True)
def test_table_has_a_header_and_one_line_per_subscriber(alice, lobby):
    _post(alice, lobby, 3)
    drain("recorder")
    with worker("picky", consumer="table-worker") as w:
        w._heartbeat()
        lines = _table()
        stats = _stats()

    header, *rows = lines
    for column in (
        "subscriber",
        "lag",
        "pending",
        "dead",
        "processed",
        "last processed",
        "workers",
    ):
        assert column in header
    assert [row.split()[0] for row in rows] == list(registry.subscribers())
    for row in rows:
        name, lag, pending, dead, processed, last, n_workers = row.split()
        s = stats[name]
        assert (int(lag), int(pending), int(dead), int(processed)) == (
            s["lag"],
            s["pending"],
            s["dead"],
            s["processed"],
        )
        assert last == (s["last_processed_at"] or "-")
        assert int(n_workers) == len(s["workers"])
    recorder = next(r for r in rows if r.startswith("recorder "))
    assert recorder.split()[1:5] == ["0", "0", "0", "3"]
    picky = next(r for r in rows if r.startswith("picky "))
    assert picky.split()[-1] == "1"
