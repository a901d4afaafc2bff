"""The staff dashboard: access, server-made SVG charts, figures pushed as events are processed."""

from __future__ import annotations

import threading
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from analytics import charts, dashboard
from broker import groups, registry
from broker.worker import Worker
from chat import actions
from config.asgi import application
from infra.redis_client import get_redis
from tests.support.ws import ORIGIN, session_cookie


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("ops", password="pw-ops", is_staff=True)


async def open_dashboard(user) -> WebsocketCommunicator:
    headers = [(b"origin", ORIGIN)]
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", cookie.encode()))
    comm = WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)
    await comm.connect()
    return comm


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_only_staff_may_watch(alice):
    for user, code in ((None, 4401), (alice, 4403)):
        comm = await open_dashboard(user)
        assert (await comm.receive_output())["code"] == code


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_figures_are_pushed_when_analytics_processes_events(staff, lobby, alice):
    sub = registry.get("analytics")
    await database_sync_to_async(groups.ensure_groups)(get_redis(), [sub])
    comm = await open_dashboard(staff)
    first = await comm.receive_json_from()
    assert first["type"] == "dashboard" and first["figures"]["messages"] == 0
    assert first["charts"]["messages"].startswith("<svg")

    for body in ("a", "b", "c"):
        await database_sync_to_async(actions.post_message)(author=alice, room=lobby, body=body)
    worker = Worker(sub, stop=threading.Event())
    await database_sync_to_async(worker.step)()

    pushed = await comm.receive_json_from(timeout=5)
    assert pushed["figures"]["messages"] == 3
    assert pushed["figures"]["active_users"] == 1
    assert "lobby" in pushed["charts"]["rooms"]
    assert set(pushed["subscribers"]) >= {"analytics", "mentions"}
    await comm.disconnect()


def test_pushes_are_throttled_and_never_block_the_worker(monkeypatch):
    if dashboard._pending is not None:  # a push an earlier test left scheduled
        dashboard._pending.cancel()
    monkeypatch.setattr(dashboard, "_pending", None)
    monkeypatch.setattr(dashboard, "_last_push", 0.0)
    monkeypatch.setattr(dashboard, "frame", lambda: "frame")
    pushed: list[tuple[float, str]] = []
    arrived = threading.Semaphore(0)

    def record(group, frame):
        pushed.append((time.monotonic(), threading.current_thread().name))
        arrived.release()

    monkeypatch.setattr(dashboard.push, "signal", record)
    monkeypatch.setattr(dashboard.push, "has_listeners", lambda group: True)

    for _ in range(5):  # a burst of batches: one push
        dashboard._push_soon()
    assert arrived.acquire(timeout=3)
    for _ in range(5):  # the next burst: one more, a throttle window later
        dashboard._push_soon()
    assert arrived.acquire(timeout=3)
    assert not arrived.acquire(timeout=0.3)

    assert len(pushed) == 2
    assert pushed[1][0] - pushed[0][0] >= dashboard.PUSH_EVERY_SECONDS * 0.9
    assert all(name != threading.main_thread().name for _, name in pushed)


def test_no_snapshot_is_computed_while_no_dashboard_is_open(monkeypatch):
    """Redis is asked who listens (PUBSUB NUMSUB): with nobody on the dashboard group the
    snapshot's queries and charts are skipped; with a listener it is computed and pushed."""
    from channels.layers import get_channel_layer

    computed = threading.Semaphore(0)

    def counted_frame() -> str:
        computed.release()
        return "frame"

    monkeypatch.setattr(dashboard, "frame", counted_frame)
    dashboard._push_now()
    assert not computed.acquire(timeout=0.1)

    listener = get_redis().pubsub()
    listener.subscribe(get_channel_layer().group_channel_name(dashboard.GROUP))
    try:
        assert listener.get_message(timeout=5)["type"] == "subscribe"
        dashboard._push_now()
        assert computed.acquire(timeout=1)
        message = listener.get_message(timeout=5)
        assert message is not None and message["type"] == "message"
    finally:
        listener.close()


def test_chart_text_is_escaped():
    svg = charts.bar_chart([("<script>alert(1)</script>", 3)], labelledby='t" & <b>')
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'aria-labelledby="t&quot; &amp; &lt;b&gt;"' in svg
    line = charts.line_chart([("10:00", 1), ("10:01", 4)], labelledby="x")
    assert line.startswith("<svg") and "<polyline" in line


def test_charts_hold_data_only_their_titles_are_the_pages():
    # One chart is pushed alike to every open dashboard: no words in it, whatever the language.
    empty = charts.bar_chart([], labelledby="chart-rooms-title")
    assert 'class="chart chart-empty"' in empty and "<text" not in empty
    line = charts.line_chart([("10:00", 1)], labelledby="chart-messages-title")
    assert 'aria-labelledby="chart-messages-title"' in line and "font-weight" not in line


@pytest.mark.django_db
def test_the_page_is_for_staff(staff, alice):
    assert Client().get("/analytics/dashboard/").status_code == 302
    client = Client()
    client.force_login(alice)
    assert client.get("/analytics/dashboard/").status_code == 302  # to the admin login
    client.force_login(staff)
    page = client.get("/analytics/dashboard/")
    assert page.status_code == 200 and b'id="chart-messages"' in page.content
