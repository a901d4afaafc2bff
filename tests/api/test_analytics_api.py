"""GET /api/analytics/summary/: staff only, the same figures as /analytics/summary/."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat import actions
from tests.support.api import assert_error, client_for, token_client
from tests.support.inproc_worker import drain

URL = "/api/analytics/summary/"


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("ops", password="pw-ops", is_staff=True)


def test_staff_get_the_summary(api, staff):
    response = api(staff).get(URL, {"minutes": 5})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert {"totals", "top_rooms", "top_users", "connections", "latency", "minutes", "since"} <= (
        set(data)
    )
    assert len(data["minutes"]) == 5


def test_the_default_window_is_sixty_minutes(staff):
    assert len(token_client(staff).get(URL).json()["minutes"]) == 60


@pytest.mark.parametrize("minutes", ["1", "1440"])
def test_window_bounds_are_accepted(staff, minutes):
    response = token_client(staff).get(URL, {"minutes": minutes})
    assert len(response.json()["minutes"]) == int(minutes)


@pytest.mark.django_db(transaction=True)
def test_the_same_figures_as_the_html_endpoint(staff, alice, bob, lobby):
    actions.post_message(author=alice, room=lobby, body="one")
    actions.post_message(author=bob, room=lobby, body="two")
    drain("analytics")
    html_client = Client()
    html_client.force_login(staff)

    api = token_client(staff).get(URL, {"minutes": 5}).json()
    page = html_client.get("/analytics/summary/", {"minutes": 5}).json()

    assert (
        api["totals"]
        == page["totals"]
        == {
            "messages": 2,
            "joins": 2,
            "leaves": 0,
            "active_users": 2,
        }
    )
    assert api["top_rooms"] == page["top_rooms"] == [{"room": "lobby", "messages": 2}]


@pytest.mark.parametrize("how", ["token", "session"])
def test_non_staff_are_refused_with_a_403(alice, lobby, how):
    response = client_for(alice, how).get(URL, {"minutes": 5})
    assert_error(response, 403, "permission_denied")
    # Nor does a bad parameter reveal anything (authorisation comes first).
    assert_error(client_for(alice, how).get(URL, {"minutes": "abc"}), 403, "permission_denied")


def test_anonymous_is_401(db):
    from rest_framework.test import APIClient

    response = APIClient().get(URL)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("minutes", ["0", "1441", "abc", "-5", "2.5"])
def test_invalid_minutes_is_a_400_naming_the_field(staff, minutes):
    body = assert_error(token_client(staff).get(URL, {"minutes": minutes}), 400, "invalid")
    assert list(body["fields"]) == ["minutes"]
