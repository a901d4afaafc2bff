"""Redis losing its data, in-process: noticed, groups recreated where the ledger stopped, the
unprocessed outbox events republished once, and the outbox kept until they are processed.

Each test runs on a private Redis (never the suite's: it is flushed on purpose).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from broker import groups, loss, registry
from broker.models import ProcessedEvent, RedisState, SubscriberState
from chat import repair
from chat.models import Mention, Message, OutboxEvent
from contract.events import TOPIC_MESSAGE, stream_key
from infra.redis_client import get_redis
from tests.support.inproc_worker import run_until, worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def on_private_redis(private_redis):
    with override_settings(REDIS_URL=private_redis.url):
        yield get_redis()


def post(room, author, *bodies: str) -> None:
    for body in bodies:
        Message.objects.create(room=room, author=author, body=body)


def mentioned() -> list[str]:
    return sorted(Mention.objects.values_list("message__body", flat=True))


def relay_check(watch: loss.RelayWatch, client) -> int | None:
    """One relay check; repair as the relay does. Returns the events republished, or None."""
    reason, requests = watch.check(client)
    return repair.repair(client, reason, answers=requests) if reason else None


def test_flushall_is_repaired_and_a_now_subscriber_misses_nothing(on_private_redis, lobby, alice):
    client = on_private_redis
    watch = loss.RelayWatch()
    assert relay_check(watch, client) is None  # the first check writes the marker
    with worker("mentions") as w:  # "start": "now": created before the posts
        post(lobby, alice, "@bob 1", "@bob 2")
        run_until(w, lambda: len(mentioned()) == 2, what="the first mentions")
        post(lobby, alice, "@bob 3", "@bob 4")  # on the stream, not processed yet

        client.flushall()
        assert relay_check(watch, client) == 2  # 3 and 4, for mentions (the only one started)
        run_until(w, lambda: len(mentioned()) == 4, what="the republished mentions")
        post(lobby, alice, "@bob 5")
        run_until(w, lambda: len(mentioned()) == 5, what="a mention after the repair")

    assert mentioned() == ["@bob 1", "@bob 2", "@bob 3", "@bob 4", "@bob 5"]
    assert ProcessedEvent.objects.filter(subscriber="mentions").count() == 5
    state = RedisState.objects.get()
    assert (state.losses, state.republished) == (1, 2)
    assert "marker key vanished" in state.last_loss_reason
    assert SubscriberState.objects.get(subscriber="mentions").republished == 2
    assert relay_check(watch, client) is None  # repaired: nothing more to do


def test_a_lost_group_is_recreated_at_the_ledger_and_asks_for_a_repair(
    on_private_redis, lobby, alice
):
    client = on_private_redis
    watch = loss.RelayWatch()
    relay_check(watch, client)
    with worker("mentions") as w:
        post(lobby, alice, "@bob 1")
        run_until(w, lambda: len(mentioned()) == 1, what="the first mention")
        last = ProcessedEvent.objects.get(subscriber="mentions").stream_id
        post(lobby, alice, "@bob 2")
        client.xgroup_destroy(stream_key(TOPIC_MESSAGE), "mentions")

        w.step()  # NOGROUP: the worker creates the group again, where its ledger stopped
        group = next(g for g in client.xinfo_groups(TOPIC_MESSAGE) if g["name"] == b"mentions")
        assert group["last-delivered-id"].decode() == last  # not "$": "@bob 2" is still ahead
        assert RedisState.objects.get().requests == 1

        assert relay_check(watch, client) == 1  # the relay answers the worker's request
        run_until(w, lambda: len(mentioned()) == 2, what="the mention after the lost group")
    assert ProcessedEvent.objects.filter(subscriber="mentions").count() == 2
    assert relay_check(watch, client) is None


def test_a_stream_that_went_back_is_a_loss(on_private_redis, lobby, alice):
    client = on_private_redis
    relay_check(loss.RelayWatch(), client)
    groups.ensure_groups(client, [registry.get("recorder")])
    post(lobby, alice, "one")
    subs = list(registry.subscribers().values())
    assert loss.streams_went_back(client, subs) is None
    # As after a restart from an older snapshot: the ledger is ahead of the stream.
    ProcessedEvent.objects.create(
        subscriber="recorder",
        event_id=OutboxEvent.objects.get(topic=TOPIC_MESSAGE).event_id,
        topic=TOPIC_MESSAGE,
        stream_id="99999999999999-0",
        worker="test",
    )
    reason = loss.streams_went_back(client, subs)
    assert reason and "stream chat.message went back" in reason

    # Recreated empty with its groups after a repaired loss: not a loss again (the relay's
    # minute found one in every empty stream and repaired again each time).
    client.flushall()
    groups.ensure_groups(client, [registry.get("recorder")])
    assert loss.streams_went_back(client, subs) is None


def test_a_new_server_identity_is_repaired(on_private_redis, lobby, alice):
    client = on_private_redis
    watch = loss.RelayWatch()
    relay_check(watch, client)
    assert relay_check(watch, client) is None
    RedisState.objects.update(server_id="another server")  # as after a failover
    reason, _ = watch.check(client)
    assert reason == "its run id or replication id changed (a restart or a failover)"
    repair.repair(client, reason, answers=0)
    assert relay_check(watch, client) is None


def test_the_marker_watch_reports_a_vanished_marker_once():
    watch = loss.MarkerWatch()
    assert watch.changed(None) is None  # first look: nothing known
    assert watch.changed(b"a") is None
    assert watch.changed(b"a") is None
    assert watch.changed(None) == "its marker key vanished"
    assert watch.changed(None) is None
    assert watch.changed(b"b") is None  # the relay's new marker after that loss
    assert watch.changed(b"c") == "its marker key was replaced"


def test_prune_keeps_what_a_started_subscriber_has_not_processed(on_private_redis, lobby, alice):
    groups.ensure_groups(on_private_redis, [registry.get("recorder")])
    post(lobby, alice, "processed", "unprocessed", "later")
    OutboxEvent.objects.exclude(topic=TOPIC_MESSAGE).delete()
    first, second, third = OutboxEvent.objects.order_by("id")
    ProcessedEvent.objects.create(
        subscriber="recorder", event_id=first.event_id, topic=TOPIC_MESSAGE, worker="t"
    )
    ProcessedEvent.objects.create(
        subscriber="recorder", event_id=third.event_id, topic=TOPIC_MESSAGE, worker="t"
    )
    OutboxEvent.objects.update(published_at=timezone.now() - timedelta(days=2))

    # Only rows before the first one recorder still needs go.
    scanned: dict[str, int] = {}
    assert repair.prune(older_than=timedelta(hours=24), cap=timedelta(days=7), scanned=scanned) == 1
    assert list(OutboxEvent.objects.order_by("id")) == [second, third]
    assert scanned == {"recorder": second.pk}  # the next scan starts there
    ProcessedEvent.objects.create(
        subscriber="recorder", event_id=second.event_id, topic=TOPIC_MESSAGE, worker="t"
    )
    assert repair.prune(older_than=timedelta(hours=24), cap=timedelta(days=7), scanned=scanned) == 2
    assert scanned == {"recorder": third.pk + 1}
    # Past the cap a row goes, processed or not.
    post(lobby, alice, "never processed")
    OutboxEvent.objects.update(published_at=timezone.now() - timedelta(days=2))
    assert repair.prune(older_than=timedelta(hours=24), cap=timedelta(days=7)) == 0
    assert repair.prune(older_than=timedelta(hours=24), cap=timedelta(days=1)) == 1
