"""The token page: people create and revoke their own API tokens in the browser UI."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import ApiToken
from accounts.tokens import create_token, user_for_token


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.mark.django_db
def test_create_shows_the_token_once_and_it_works(alice_client, alice):
    page = alice_client.post("/account/tokens/", {"name": "my-bot"})
    assert page.status_code == 200
    [raw] = re.findall(r'<code id="new-token">(plt_[^<]+)</code>', page.content.decode())
    assert user_for_token(raw) == alice
    assert ApiToken.objects.get(user=alice).name == "my-bot"
    listing = alice_client.get("/account/tokens/").content.decode()
    assert raw not in listing and "my-bot" in listing  # never shown again


@pytest.mark.django_db
def test_revoke_own_token_but_not_anothers(alice_client, alice, bob):
    mine, raw = create_token(user=alice, name="old")
    theirs, their_raw = create_token(user=bob, name="bob's")

    assert alice_client.post(f"/account/tokens/{mine.pk}/revoke/").status_code == 302
    alice_client.post(f"/account/tokens/{theirs.pk}/revoke/")

    assert user_for_token(raw) is None
    assert user_for_token(their_raw) == bob
    assert "revoked" in alice_client.get("/account/tokens/").content.decode()


@pytest.mark.django_db
def test_the_page_needs_a_login_and_revoking_needs_post(alice_client, alice):
    assert Client().get("/account/tokens/").status_code == 302
    token, _ = create_token(user=alice)
    assert alice_client.get(f"/account/tokens/{token.pk}/revoke/").status_code == 405


@pytest.mark.django_db
def test_csrf_is_enforced(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/account/tokens/", {"name": "x"}).status_code == 403
    assert not ApiToken.objects.exists()
