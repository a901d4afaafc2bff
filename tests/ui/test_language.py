"""The pages' language: Accept-Language picks English or French for templates, for the messages
the views show, and for the JS catalog; the API stays English with its documented headers."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

FRENCH = {"HTTP_ACCEPT_LANGUAGE": "fr-FR,fr;q=0.9"}


@pytest.fixture
def as_bob(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client


def test_room_page_follows_accept_language(as_bob, lobby):
    french = as_bob.get("/rooms/lobby/", **FRENCH)
    assert french["Content-Language"] == "fr"
    assert '<html lang="fr"' in french.text and ">Envoyer</button>" in french.text
    assert "Accept-Language" in french["Vary"]
    english = as_bob.get("/rooms/lobby/", HTTP_ACCEPT_LANGUAGE="en-US")
    assert '<html lang="en"' in english.text and ">Send</button>" in english.text
    # A language Parley does not have falls back to English.
    assert ">Send</button>" in as_bob.get("/rooms/lobby/", HTTP_ACCEPT_LANGUAGE="ja").text


def test_a_message_shown_by_a_view_is_translated(as_bob, lobby):
    page = as_bob.post("/rooms/lobby/leave/", follow=True, **FRENCH)
    assert "Vous avez quitté Lobby." in page.text


def test_js_catalog_is_a_script_file_in_the_page_language(as_bob, lobby):
    page = as_bob.get("/rooms/lobby/", **FRENCH).text
    assert '<script src="/jsi18n/"></script>' in page  # a script URL: CSP allows no inline script
    catalog = as_bob.get("/jsi18n/", **FRENCH)
    assert catalog["Content-Type"].startswith("text/javascript")
    assert "en direct" in catalog.text and "message supprim" in catalog.text
    assert "en direct" not in as_bob.get("/jsi18n/", HTTP_ACCEPT_LANGUAGE="en").text


def test_the_api_stays_english_without_content_language(as_bob):
    response = as_bob.get("/api/rooms/", **FRENCH)
    assert response.status_code == 200
    assert "Content-Language" not in response


def test_login_and_token_pages_are_translated(as_bob):
    login = Client().get("/accounts/login/", **FRENCH).text
    assert "<h1>Se connecter</h1>" in login
    assert 'Nouveau ici ? <a href="/accounts/signup/">' in login
    tokens = as_bob.get("/account/tokens/", **FRENCH).text
    assert "<title>Jetons d’API · Parley</title>" in tokens and "Pas encore de jeton." in tokens


def test_staff_dashboard_is_translated(bob):
    bob.is_staff = True
    bob.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(bob)
    page = client.get("/analytics/dashboard/", **FRENCH).text
    assert "<h1>Tableau de bord</h1>" in page and "Latence de diffusion p50" in page
