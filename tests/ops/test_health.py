"""/healthz and /readyz through the real ASGI application, against the real database and Redis."""

from __future__ import annotations

import statistics
import threading
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from broker import registry
from broker.worker import Worker
from chat.models import Message, OutboxEvent
from infra.redis_client import get_redis
from ops import health
from tests.ops.asgi import get

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_REDIS = "redis://127.0.0.1:9/0"  # the discard port: nothing listens


@pytest.fixture(autouse=True)
def _close_pool_connections():
    yield
    connections.close_all()


def beat_all() -> None:
    """What a running relay and one worker per subscriber write (their own code)."""
    health.relay_heartbeat(get_redis())
    for sub in registry.subscribers().values():
        Worker(sub, stop=threading.Event(), consumer="probe")._heartbeat()


@pytest.mark.asyncio
async def test_healthz_answers_without_touching_anything():
    with override_settings(REDIS_URL=DEAD_REDIS):
        response = await get("/healthz", client="10.1.2.3")
    assert response.status == 200 and response.json()["status"] == "alive"


@pytest.mark.asyncio
async def test_only_get_and_head_are_answered():
    for path in ("/healthz", "/readyz", "/metrics"):
        refused = await get(path, method="POST")
        assert refused.status == 405 and refused.json()["error"] == "method_not_allowed"
    head = await get("/healthz", method="HEAD")
    assert head.status == 200 and head.body == b"" and int(head.headers[b"content-length"]) > 0


@pytest.mark.asyncio
async def test_ready_when_every_check_passes():
    await database_sync_to_async(beat_all)()
    response = await get("/readyz")
    assert response.status == 200, response.body
    body = response.json()
    assert body["ready"] is True
    assert set(body["checks"]) == {
        "draining",
        "database",
        "redis",
        "relay",
        "outbox",
        "subscribers",
    }
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.asyncio
async def test_not_ready_without_relay_or_workers():
    response = await get("/readyz")
    assert response.status == 503
    checks = response.json()["checks"]
    assert checks["relay"] == {"ok": False, "age_seconds": None}
    assert checks["subscribers"]["ok"] is False
    assert set(checks["subscribers"]["missing"]) == set(registry.subscribers())
    assert checks["database"]["ok"] and checks["redis"]["ok"] and checks["outbox"]["ok"]


@pytest.mark.asyncio
async def test_only_the_required_subscribers_count():
    await database_sync_to_async(health.relay_heartbeat)(get_redis())
    health_conf = {**health.settings.PARLEY_HEALTH, "SUBSCRIBERS": ["analytics"]}
    with override_settings(PARLEY_HEALTH=health_conf):
        assert (await get("/readyz")).status == 503  # analytics has no worker yet
        sub = registry.get("analytics")
        await database_sync_to_async(
            Worker(sub, stop=threading.Event(), consumer="probe")._heartbeat
        )()
        assert (await get("/readyz")).status == 200


@pytest.mark.asyncio
async def test_not_ready_when_redis_is_unreachable():
    with override_settings(REDIS_URL=DEAD_REDIS):
        response = await get("/readyz")
    assert response.status == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is False and "error" in checks["redis"]
    assert checks["database"]["ok"] is True


@pytest.mark.asyncio
async def test_not_ready_while_an_old_event_waits_in_the_outbox(lobby, alice):
    await database_sync_to_async(beat_all)()

    @database_sync_to_async
    def unpublished_event_from(seconds_ago: float) -> None:
        with override_settings(REDIS_URL=DEAD_REDIS):  # the fast path fails: the row waits
            Message.objects.create(room=lobby, author=alice, body="stuck")
        OutboxEvent.objects.filter(published_at__isnull=True).update(
            created_at=timezone.now() - timedelta(seconds=seconds_ago)
        )

    await unpublished_event_from(45)
    response = await get("/readyz")
    assert response.status == 503
    outbox = response.json()["checks"]["outbox"]
    assert outbox["ok"] is False and 44 < outbox["age_seconds"] < 60


def test_readiness_is_one_query_and_one_redis_round_trip(django_assert_num_queries):
    beat_all()
    client = get_redis()
    before = client.info("stats")["total_commands_processed"]
    with django_assert_num_queries(1):
        assert health.readiness()["ready"]
    # GET + HGETALL in one pipeline (the INFO call itself is the third command counted)
    assert client.info("stats")["total_commands_processed"] - before <= 3


@pytest.mark.asyncio
async def test_readyz_latency_is_small():
    """A probe every second must be cheap: the median of 50 in-process probes (figure in the
    README, Production)."""
    await database_sync_to_async(beat_all)()
    times = []
    for _ in range(50):
        start = time.perf_counter()
        assert (await get("/readyz")).status == 200
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"/readyz median {median * 1000:.2f} ms, max {max(times) * 1000:.2f} ms")
    assert median < 0.05
