"""API tokens: /api/tokens/ (list, create, revoke) and ``manage.py token``."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.tokens import PREFIX, create_token
from tests.support.api import CSRF, assert_error, bearer, session_client, token_client

URL = "/api/tokens/"
FIELDS = {"id", "name", "hint", "created_at", "last_used_at", "revoked_at"}


def _works(raw: str) -> bool:
    return APIClient().get("/api/rooms/", **bearer(raw)).status_code == 200


# --- list ----------------------------------------------------------------------------------------
def test_list_shows_own_tokens_with_a_hint_never_the_token(api, alice, bob):
    _, first = create_token(user=alice, name="laptop")
    _, second = create_token(user=alice, name="ci")
    _, bobs = create_token(user=bob, name="bob's")

    response = api(alice).get(URL)

    assert response.status_code == 200
    data = response.json()
    mine = [t for t in data if t["name"] in ("laptop", "ci")]
    assert [t["name"] for t in mine] == ["ci", "laptop"]  # newest first
    assert all(set(t) == FIELDS for t in data)
    assert {t["hint"] for t in mine} == {second[:8], first[:8]}
    assert all(t["hint"].startswith(PREFIX) for t in data)
    assert "bob's" not in {t["name"] for t in data}
    for raw in (first, second, bobs):
        assert raw not in response.content.decode()
        assert raw[8:20] not in response.content.decode()
    # Only the digest is stored.
    assert not ApiToken.objects.filter(digest__in=[first, second]).exists()


# --- create --------------------------------------------------------------------------------------
def test_create_shows_the_token_once_and_it_works(api, alice, lobby):
    client = api(alice)

    response = client.post(URL, {"name": "deploy"}, format="json")

    assert response.status_code == 201
    data = response.json()
    assert set(data) == FIELDS | {"token"}
    raw = data["token"]
    assert raw.startswith(PREFIX) and len(raw) > 40
    assert data["hint"] == raw[:8]
    assert (data["name"], data["last_used_at"], data["revoked_at"]) == ("deploy", None, None)
    assert ApiToken.objects.get(pk=data["id"]).user == alice

    assert raw not in client.get(URL).content.decode()
    assert _works(raw)
    assert ApiToken.objects.get(pk=data["id"]).last_used_at is not None


def test_create_without_a_name_is_named_default(alice):
    response = token_client(alice).post(URL, {}, format="json")
    assert response.status_code == 201
    assert response.json()["name"] == "default"


@pytest.mark.parametrize("name", ["", "x" * 101, None])
def test_create_with_a_bad_name_is_a_400(alice, name):
    client = token_client(alice)
    before = ApiToken.objects.count()
    body = assert_error(client.post(URL, {"name": name}, format="json"), 400, "invalid")
    assert list(body["fields"]) == ["name"]
    assert ApiToken.objects.count() == before


def test_a_session_creates_a_token_with_csrf_only(alice):
    client = session_client(alice, enforce_csrf_checks=True)
    assert_error(client.post(URL, {"name": "x"}, format="json"), 403, "permission_denied")
    assert not ApiToken.objects.exists()

    client.cookies["csrftoken"] = CSRF
    response = client.post(URL, {"name": "x"}, format="json", HTTP_X_CSRFTOKEN=CSRF)
    assert response.status_code == 201
    assert _works(response.json()["token"])


# --- revoke --------------------------------------------------------------------------------------
def test_revoke_own_token_stops_it(api, alice, lobby):
    token, raw = create_token(user=alice, name="old")
    client = api(alice)

    response = client.delete(f"{URL}{token.pk}/")

    assert response.status_code == 204
    assert response.content == b""
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert not _works(raw)
    assert_error(APIClient().get("/api/rooms/", **bearer(raw)), 401, "authentication_failed")
    listed = {t["id"]: t for t in client.get(URL).json()}
    assert listed[token.pk]["revoked_at"] is not None
    # Again: it is no longer an active token.
    assert_error(client.delete(f"{URL}{token.pk}/"), 404, "not_found")


def test_a_token_can_revoke_itself(alice, lobby):
    token, raw = create_token(user=alice)
    client = APIClient()
    client.credentials(**bearer(raw))
    assert client.delete(f"{URL}{token.pk}/").status_code == 204
    assert_error(client.get(URL), 401, "authentication_failed")


def test_another_users_token_cannot_be_revoked(alice, bob, lobby):
    token, raw = create_token(user=alice)
    response = token_client(bob).delete(f"{URL}{token.pk}/")
    assert_error(response, 404, "not_found")
    token.refresh_from_db()
    assert token.revoked_at is None
    assert _works(raw)


@pytest.mark.parametrize("token_id", ["999999", "0", "9" * 30])
def test_an_unknown_token_is_a_404(alice, token_id):
    assert_error(token_client(alice).delete(f"{URL}{token_id}/"), 404, "not_found")


def test_revoking_one_token_keeps_the_others(alice, lobby):
    keep, keep_raw = create_token(user=alice, name="keep")
    drop, drop_raw = create_token(user=alice, name="drop")
    assert token_client(alice).delete(f"{URL}{drop.pk}/").status_code == 204
    assert _works(keep_raw)
    assert not _works(drop_raw)


# --- manage.py token -----------------------------------------------------------------------------
def _command(*args) -> str:
    out = io.StringIO()
    call_command("token", *args, stdout=out)
    return out.getvalue()


def test_command_create_prints_the_token_alone_on_the_last_line(alice, lobby):
    output = _command("create", "alice", "--name", "ci")

    last = output.rstrip("\n").splitlines()[-1]
    assert last.startswith(PREFIX)
    assert last.strip() == last and " " not in last
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.hint) == (alice, "ci", last[:8])
    assert f"token {token.pk} (ci) for alice" in output
    response = APIClient().get("/api/rooms/", HTTP_AUTHORIZATION=f"Bearer {last}")
    assert response.status_code == 200
    assert [r["slug"] for r in response.json()] == ["lobby"]


def test_command_list_shows_hints_and_states_never_tokens(alice, bob):
    active, active_raw = create_token(user=alice, name="laptop")
    revoked, revoked_raw = create_token(user=alice, name="old")
    _command("revoke", str(revoked.pk))
    create_token(user=bob, name="bobs")
    _works(active_raw)

    output = _command("list", "alice")

    lines = output.splitlines()
    assert len(lines) == 2
    assert str(revoked.pk) in lines[0] and "old" in lines[0] and "revoked" in lines[0]
    assert str(active.pk) in lines[1] and "laptop" in lines[1] and "active" in lines[1]
    assert active.hint in lines[1]
    assert "never" in lines[0] and "never" not in lines[1]
    assert active_raw not in output and revoked_raw not in output
    assert "bobs" not in output


def test_command_revoke_stops_the_token(alice, lobby):
    token, raw = create_token(user=alice)
    assert _works(raw)

    assert _command("revoke", str(token.pk)).strip() == f"revoked token {token.pk}"

    assert not _works(raw)
    with pytest.raises(CommandError, match="no active token"):
        _command("revoke", str(token.pk))


@pytest.mark.parametrize("args", [("create", "ghost"), ("list", "ghost")])
def test_command_with_an_unknown_user_fails(db, args):
    with pytest.raises(CommandError, match="no user 'ghost'"):
        _command(*args)
    assert not ApiToken.objects.exists()


def test_command_revoke_of_an_unknown_id_fails(db):
    with pytest.raises(CommandError, match="no active token with id 12345"):
        _command("revoke", "12345")
