"""The theme kept per user: POST /account/theme/ stores it, every page then renders it for the
reader (data-user-theme on <html>), whatever browser they use."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Preference

pytestmark = pytest.mark.django_db


def _client(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def test_theme_is_kept_and_read_by_the_pages_in_another_session(alice, lobby):
    assert 'data-user-theme=""' in _client(alice).get("/rooms/lobby/").text  # the system's
    response = _client(alice).post("/account/theme/", {"theme": "dark"})
    assert response.status_code == 200 and response.json() == {"theme": "dark"}
    assert 'data-user-theme="dark"' in _client(alice).get("/rooms/lobby/").text
    assert _client(alice).post("/account/theme/", {"theme": "system"}).json() == {"theme": "system"}
    assert Preference.objects.get(user=alice).theme == ""


def test_bad_theme_is_refused_and_changes_nothing(alice):
    _client(alice).post("/account/theme/", {"theme": "dark"})
    for bad in ("", "blue", "DARK", "dark "):
        response = _client(alice).post("/account/theme/", {"theme": bad})
        assert response.status_code == 400
        assert response.json()["code"] == "bad_request"
    # A NUL is refused before the view (web.text_input), also with 400.
    assert _client(alice).post("/account/theme/", {"theme": "dark\x00"}).status_code == 400
    assert Preference.objects.get(user=alice).theme == "dark"


def test_theme_needs_a_login_and_the_csrf_token(alice, bob):
    anonymous = Client().post("/account/theme/", {"theme": "dark"})
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert _client(bob, csrf=True).post("/account/theme/", {"theme": "dark"}).status_code == 403
    assert _client(bob).get("/account/theme/").status_code == 405
    assert not Preference.objects.exists()
    assert "data-user-theme" not in Client().get("/accounts/login/").text  # anonymous: browser's
