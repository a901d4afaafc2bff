"""The staff dashboard: access, server-made SVG charts, figures pushed as events are processed."""

from __future__ import annotations

import threading

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from analytics import charts, dashboard
from broker import registry, streams
from broker.worker import Worker
from chat import actions
from config.asgi import application
from config.redis_client import get_redis
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
    await database_sync_to_async(streams.ensure_groups)(get_redis(), [sub])
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


def test_pushes_are_throttled_with_a_trailing_one(monkeypatch):
    if dashboard._trailing is not None:  # a push an earlier test left scheduled
        dashboard._trailing.cancel()
    sent = []
    monkeypatch.setattr(dashboard, "frame", lambda: "frame")
    monkeypatch.setattr(dashboard.push, "signal", lambda group, frame: sent.append(group))
    monkeypatch.setattr(dashboard, "_last_push", 0.0)
    monkeypatch.setattr(dashboard, "_trailing", None)  # no timer left by an earlier test
    done = threading.Event()
    real_trailing = dashboard._trailing_push
    monkeypatch.setattr(dashboard, "_trailing_push", lambda: (real_trailing(), done.set()))

    for _ in range(5):
        dashboard._push_throttled()

    assert sent == ["dashboard"]  # the first at once, the next four folded...
    assert done.wait(3)  # ...into one trailing push
    assert sent == ["dashboard", "dashboard"]


def test_chart_text_is_escaped():
    svg = charts.bar_chart([("<script>alert(1)</script>", 3)], title="t & <b>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "t &amp; &lt;b&gt;" in svg
    line = charts.line_chart([("10:00", 1), ("10:01", 4)], title="x")
    assert line.startswith("<svg") and "<polyline" in line


@pytest.mark.django_db
def test_the_page_is_for_staff(staff, alice):
    assert Client().get("/analytics/dashboard/").status_code == 302
    client = Client()
    client.force_login(alice)
    assert client.get("/analytics/dashboard/").status_code == 302  # to the admin login
    client.force_login(staff)
    page = client.get("/analytics/dashboard/")
    assert page.status_code == 200 and b'id="chart-messages"' in page.content
