"""The relay's reconciliation: an event marked published that never reached the subscriber's
stream (as when a demoted primary accepted it and dropped it) is republished once the
subscriber has gone past it; a subscriber still behind is left alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from broker import groups, registry
from broker.models import ProcessedEvent, RedisState, SubscriberState
from chat.models import Message, OutboxEvent
from chat.reconcile import Reconciler
from contract.events import TOPIC_MESSAGE, stream_key
from infra.redis_client import get_redis
from tests.support.inproc_worker import run_until, worker

pytestmark = pytest.mark.django_db(transaction=True)


def processed_bodies() -> list[str]:
    ids = ProcessedEvent.objects.filter(subscriber="recorder").values_list("event_id", flat=True)
    rows = OutboxEvent.objects.filter(event_id__in=list(ids)).order_by("id")
    return [r.event["payload"]["message"]["body"] for r in rows]


def test_an_event_lost_on_the_way_is_republished_once_the_subscriber_went_past_it(
    private_redis, lobby, alice
):
    with override_settings(REDIS_URL=private_redis.url):
        client = get_redis()
        groups.ensure_groups(client, [registry.get("picky")])  # started, never runs here
        reconciler = Reconciler()
        with worker("recorder") as w:
            Message.objects.create(room=lobby, author=alice, body="a")
            run_until(w, lambda: processed_bodies() == ["a"], what="a processed")
            Message.objects.create(room=lobby, author=alice, body="lost")
            lost = OutboxEvent.objects.get(event__payload__message__body="lost")
            # Gone from the stream before anyone read it, published long enough ago.
            last = client.xrevrange(stream_key(TOPIC_MESSAGE), count=1)[0][0]
            client.xdel(stream_key(TOPIC_MESSAGE), last)
            OutboxEvent.objects.filter(pk=lost.pk).update(
                published_at=timezone.now() - timedelta(seconds=10)
            )
            assert reconciler.round(client) == 0  # the first round only marks

            Message.objects.create(room=lobby, author=alice, body="c")
            run_until(w, lambda: processed_bodies() == ["a", "c"], what="c processed")
            assert reconciler.round(client) == 1  # recorder went past "lost"
            run_until(w, lambda: processed_bodies() == ["a", "lost", "c"], what="lost processed")
            assert reconciler.round(client) == 0  # settled: not again

    assert RedisState.objects.get().losses == 1
    assert SubscriberState.objects.get(subscriber="recorder").republished == 1
    assert SubscriberState.objects.get(subscriber="picky").republished == 0  # still behind
