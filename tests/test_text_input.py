"""A NUL or text that is not UTF-8 in any form field, query string or path answers 400, never
500, and changes nothing (web.text_input). On PostgreSQL these reached the database and
failed with a 500; on SQLite they were stored or looked up as they came."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import ApiToken
from chat.models import Room

pytestmark = pytest.mark.django_db


def form_post(client: Client, url: str, data: dict):
    """POST ``data`` as browsers send a form (the test client's default is multipart)."""
    return client.post(url, urlencode(data), content_type="application/x-www-form-urlencoded")


@pytest.fixture
def browser(bob) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(bob)
    return client


@pytest.mark.parametrize(
    "field",
    [{"username": "bo\x00b", "password": "x"}, {"username": "bob", "password": "pw\x00"}],
)
def test_login_form(bob, field):
    client = Client(raise_request_exception=False)
    assert form_post(client, "/accounts/login/", field).status_code == 400
    assert client.post("/accounts/login/", field).status_code == 400  # multipart too


def test_signup_form():
    form = {"username": "eve\x00", "password1": "a-long-pass-1", "password2": "a-long-pass-1"}
    response = form_post(Client(raise_request_exception=False), "/accounts/signup/", form)
    assert response.status_code == 400
    assert not get_user_model().objects.filter(username__startswith="eve").exists()


def test_room_and_token_forms(browser, lobby):
    response = form_post(browser, "/rooms/", {"slug": "new", "title": "T\x00", "is_private": ""})
    assert response.status_code == 400
    assert not Room.objects.filter(slug="new").exists()
    assert form_post(browser, "/account/tokens/", {"name": "ci\x00"}).status_code == 400
    assert browser.post("/account/tokens/", {"name": "ci\x00"}).status_code == 400
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/dm/?username=b%00ob",
        "/dm/b%00ob/",
        "/rooms/lobby/?before_seq=%00",
        "/?q=%ff%fe",  # not UTF-8
        "/api/rooms/lobby/messages/?after_seq=1%00",
        "/api/mentions/?unread=%00",
        "/api/rooms/?x=%ed%a0%80",  # an encoded surrogate: not UTF-8
    ],
)
def test_query_strings_and_paths(browser, lobby, url):
    response = browser.get(url)
    assert response.status_code == 400
    if url.startswith("/api/"):
        assert response.json()["code"] == "invalid_text"


def test_valid_text_still_passes(browser, lobby):
    assert browser.get("/api/rooms/lobby/messages/?after_seq=0").status_code == 200
    assert browser.get("/rooms/lobby/?q=caf%C3%A9+ok").status_code == 200
    response = form_post(browser, "/rooms/", {"slug": "new", "title": "Café ☕", "is_private": ""})
    assert response.status_code == 302
    response = browser.post("/rooms/", {"slug": "new2", "title": "Café ☕", "is_private": ""})
    assert response.status_code == 302  # multipart
