"""/metrics: who may read it, what it reports, and N processes reporting together."""

from __future__ import annotations

import urllib.request

import pytest
from channels.db import database_sync_to_async
from django.db import connections
from django.test import override_settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from chat import actions
from tests.ops.asgi import get
from tests.support.procs import RemoteSocket, async_wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _close_pool_connections():
    yield
    connections.close_all()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def posts(outcome: str) -> float:
    return REGISTRY.get_sample_value("parley_posts_total", {"outcome": outcome}) or 0.0


@pytest.mark.asyncio
async def test_metrics_are_for_loopback_by_default():
    assert (await get("/metrics")).status == 200
    assert (await get("/metrics", client="::1")).status == 200
    refused = await get("/metrics", client="10.0.0.7")
    assert refused.status == 403 and refused.json()["error"] == "forbidden"


@pytest.mark.asyncio
async def test_a_token_opens_metrics_to_other_addresses():
    conf = {"ALLOWED_NETWORKS": [], "TOKEN": "s3cret-token"}
    with override_settings(PARLEY_METRICS=conf):
        ok = await get(
            "/metrics", client="10.0.0.7", headers={"Authorization": "Bearer s3cret-token"}
        )
        assert ok.status == 200
        for auth in ("Bearer wrong", "s3cret-token", ""):
            response = await get("/metrics", client="10.0.0.7", headers={"Authorization": auth})
            assert response.status == 403, auth
        assert (await get("/metrics")).status == 403  # loopback is no longer listed


@pytest.mark.asyncio
async def test_posts_are_counted_by_outcome_and_state_is_reported(
    lobby, alice, mallory, secret_room
):
    accepted, empty, forbidden = posts("accepted"), posts("body_required"), posts("forbidden")

    @database_sync_to_async
    def write() -> None:
        actions.post_message(author=alice, room=lobby, body="hello")
        for author, room, body in ((alice, lobby, " "), (mallory, secret_room, "let me in")):
            with pytest.raises(actions.ActionError):
                actions.post_message(author=author, room=room, body=body)

    await write()
    assert (posts("accepted"), posts("body_required"), posts("forbidden")) == (
        accepted + 1,
        empty + 1,
        forbidden + 1,
    )
    response = await get("/metrics")
    assert response.headers[b"content-type"].startswith(b"text/plain")
    values = samples(response.body.decode())
    assert values[("parley_posts_total", (("outcome", "accepted"),))] == accepted + 1
    assert values[("parley_outbox_pending", ())] == 0
    assert values[("parley_state_up", (("source", "database"),))] == 1
    for name in ("lag", "pending", "dead", "workers"):
        assert (f"parley_subscriber_{name}", (("subscriber", "analytics"),)) in values
    assert values[("parley_subscriber_processed_total", (("subscriber", "analytics"),))] == 0


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return samples(response.read().decode())


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_server_processes_and_workers_report_together(processes, cookies, tmp_path):
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    one, two = processes.daphne(**env), processes.daphne(**env)
    processes.worker("recorder", **env)
    with processes.explain():
        alice, _ = await RemoteSocket.open(one.ws_url("lobby"), cookies["alice"])
        bob, _ = await RemoteSocket.open(two.ws_url("lobby"), cookies["bob"])
        message = await alice.post("counted")
        await bob.wait_seq(message["seq"])
        await alice.wait_seq(message["seq"])

        async def recorded() -> bool:
            values = await database_sync_to_async(scrape)(two.port)
            return (
                values.get(("parley_subscriber_processed_total", (("subscriber", "recorder"),)))
                == 1
            )

        await async_wait_until(recorded, what="the recorder's processed count")
        values = await database_sync_to_async(scrape)(two.port)  # one process answers for all
        assert values[("parley_open_sockets", (("kind", "room"),))] == 2
        assert values[("parley_posts_total", (("outcome", "accepted"),))] == 1
        assert values[("parley_post_latency_seconds_count", ())] == 1
        # the message and each socket's presence event (socket opened)
        assert values[("parley_relay_published_total", (("path", "commit"),))] == 3
        assert values[("parley_deliveries_total", ())] == 2  # one socket in each process
        assert values[("parley_push_latency_seconds_count", ())] == 2  # one fan-out in each
        assert values[("parley_frames_sent_total", ())] >= 2
        await alice.close()
        await bob.close()


@pytest.mark.asyncio
async def test_a_source_that_cannot_be_read_is_reported_not_fatal():
    with override_settings(REDIS_URL="redis://127.0.0.1:9/0"):  # nothing listens there
        response = await get("/metrics")
    assert response.status == 200
    values = samples(response.body.decode())
    assert values[("parley_state_up", (("source", "subscribers"),))] == 0
    assert values[("parley_state_up", (("source", "database"),))] == 1
    assert ("parley_subscriber_lag", (("subscriber", "analytics"),)) not in values
