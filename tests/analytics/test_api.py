"""GET /analytics/summary/: the staff-only read API over the aggregates analytics built."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from analytics.aggregates import minute_of
from chat import actions, presence
from contract import events
from tests.support.inproc_worker import drain

URL = "/analytics/summary/"


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("ops", password="pw-ops", is_staff=True)


def _client(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _activity(alice, bob, lobby) -> None:
    """lobby (fixture: 2 joins) gets 3 messages, garden (1 join) 1; alice posts 3, bob 1;
    three sockets open, one of them closes again."""
    actions.post_message(author=alice, room=lobby, body="one")
    actions.post_message(author=alice, room=lobby, body="two")
    actions.post_message(author=bob, room=lobby, body="three")
    garden = actions.create_room(creator=bob, slug="garden", title="Garden")
    actions.post_message(author=alice, room=garden, body="four")
    for session in ("s-alice", "s-bob", "s-bob-2"):
        user = alice if session == "s-alice" else bob
        presence.record_connection(events.USER_CONNECTED, user=user, room=lobby, session=session)
    presence.record_connection(events.USER_DISCONNECTED, user=bob, room=lobby, session="s-bob")


@pytest.mark.django_db(transaction=True)
def test_summary_matches_what_was_posted(staff, alice, bob, lobby):
    _activity(alice, bob, lobby)
    drain("analytics")

    before = timezone.now()
    response = _client(staff).get(URL, {"minutes": 5})
    after = timezone.now()

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert data["totals"] == {"messages": 4, "joins": 3, "leaves": 0, "active_users": 2}
    assert data["top_rooms"] == [
        {"room": "lobby", "messages": 3},
        {"room": "garden", "messages": 1},
    ]
    assert data["top_users"] == [
        {"user": "alice", "messages": 3},
        {"user": "bob", "messages": 1},
    ]
    assert data["connections"]["open"] == 2
    assert data["connections"]["closed"] == 1
    assert data["connections"]["mean_duration_s"] >= 0
    latency = data["latency"]
    assert latency["count"] == 4
    assert latency["mean_ms"] >= 0
    assert latency["max_ms"] >= latency["mean_ms"]
    assert latency["p50_ms"] <= latency["p95_ms"] <= latency["max_ms"]

    # Five minutes, oldest first, one minute apart, ending with the current one.
    series = data["minutes"]
    assert len(series) == 5
    minutes = [datetime.fromisoformat(m["minute"]) for m in series]
    assert all(b - a == timedelta(minutes=1) for a, b in zip(minutes, minutes[1:], strict=False))
    assert minute_of(before) <= minutes[-1] <= minute_of(after)
    assert datetime.fromisoformat(data["since"]) == minutes[0]
    assert sum(m["messages"] for m in series) == 4
    assert sum(m["joins"] for m in series) == 3
    assert all(m["active_users"] <= 2 for m in series)
    assert max(m["active_users"] for m in series) >= 1


@pytest.mark.django_db(transaction=True)
def test_summary_before_any_activity_is_all_zero(staff):
    response = _client(staff).get(URL, {"minutes": 3})

    assert response.status_code == 200
    data = response.json()
    assert data["totals"] == {"messages": 0, "joins": 0, "leaves": 0, "active_users": 0}
    assert data["top_rooms"] == data["top_users"] == []
    assert data["connections"] == {"open": 0, "closed": 0, "mean_duration_s": None}
    assert data["latency"]["count"] == 0
    assert data["latency"]["mean_ms"] is None
    assert [m["messages"] for m in data["minutes"]] == [0, 0, 0]


@pytest.mark.django_db(transaction=True)
def test_default_window_is_sixty_minutes_and_bounds_are_accepted(staff):
    client = _client(staff)
    assert len(client.get(URL).json()["minutes"]) == 60
    assert len(client.get(URL, {"minutes": 1}).json()["minutes"]) == 1
    assert len(client.get(URL, {"minutes": 1440}).json()["minutes"]) == 1440


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["anonymous", "member"])
def test_non_staff_are_sent_to_the_admin_login(who, alice, bob, lobby):
    actions.post_message(author=alice, room=lobby, body="private figures")
    drain("analytics")
    client = _client(None if who == "anonymous" else alice)

    response = client.get(URL, {"minutes": 5})

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert "next=/analytics/summary/" in response["Location"]
    assert b"messages" not in response.content
    assert b"lobby" not in response.content
    # Nor does a bad parameter reveal anything (authorisation comes first).
    assert client.get(URL, {"minutes": "abc"}).status_code == 302


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("minutes", ["0", "1441", "abc", "-5", "2.5", ""])
def test_invalid_minutes_is_a_400_with_a_json_error(staff, minutes):
    response = _client(staff).get(URL, {"minutes": minutes})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "detail"}
    assert body["code"] == "invalid_minutes"
    assert "1440" in body["detail"]
