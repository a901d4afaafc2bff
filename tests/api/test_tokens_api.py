"""API tokens: /api/tokens/ (list, create, revoke) and ``manage.py token``."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.last_used import flush_last_used
from accounts.models import ApiToken
from accounts.tokens import PREFIX, create_token
from tests.support.api import CSRF, assert_error, bearer, session_client, token_client

URL = "/api/tokens/"
FIELDS = {"id", "name", "hint", "created_at", "last_used_at", "revoked_at", "expires_at"}


def _works(raw: str) -> bool:
    return APIClient().get("/api/rooms/", **bearer(raw)).status_code == 200


# --- list ----------------------------------------------------------------------------------------
def test_list_shows_own_tokens_with_a_hint_never_the_token(alice, bob):
    _, first = create_token(user=alice, name="laptop")
    _, second = create_token(user=alice, name="ci")
    _, bobs = create_token(user=bob, name="bob's")

    response = session_client(alice).get(URL)

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
def test_create_shows_the_token_once_and_it_works(alice, lobby):
    client = session_client(alice)

    response = client.post(URL, {"name": "deploy"}, format="json")

    assert response.status_code == 201
    data = response.json()
    assert set(data) == FIELDS | {"token"}
    raw = data["token"]
    assert raw.startswith(PREFIX) and len(raw) > 40
    assert data["hint"] == raw[:8]
    assert (data["name"], data["last_used_at"], data["revoked_at"]) == ("deploy", None, None)
    assert data["expires_at"] is None
    assert ApiToken.objects.get(pk=data["id"]).user == alice

    assert raw not in client.get(URL).content.decode()
    assert _works(raw)
    flush_last_used()  # the uses a process noted are written together (accounts.last_used)
    assert ApiToken.objects.get(pk=data["id"]).last_used_at is not None


def test_create_without_a_name_is_named_default(alice):
    response = session_client(alice).post(URL, {}, format="json")
    assert response.status_code == 201
    assert response.json()["name"] == "default"


@pytest.mark.parametrize("name", ["", "x" * 101, None])
def test_create_with_a_bad_name_is_a_400(alice, name):
    client = session_client(alice)
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


# --- a token cannot make or list tokens ----------------------------------------------------------
def test_a_token_cannot_create_or_list_tokens(alice, lobby):
    """A leaked token must not mint successors that survive its revocation, nor list the
    others: only a signed-in session (or staff) may."""
    client = token_client(alice)
    before = ApiToken.objects.count()
    for response in (client.post(URL, {"name": "successor"}, format="json"), client.get(URL)):
        body = assert_error(response, 403, "token_cannot_manage_tokens")
        assert "sign in" in body["detail"]
    assert ApiToken.objects.count() == before
    # It may still revoke (itself or another of its user's): that only takes access away.
    other, _ = create_token(user=alice, name="other")
    assert client.delete(f"{URL}{other.pk}/").status_code == 204


def test_a_staff_token_may_create_and_list_tokens(alice):
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    client = token_client(alice)
    assert client.post(URL, {"name": "ops"}, format="json").status_code == 201
    assert {t["name"] for t in client.get(URL).json()} == {"tests", "ops"}


# --- expiry --------------------------------------------------------------------------------------
def test_a_token_created_with_expires_in_stops_working_then(alice, lobby):
    response = session_client(alice).post(URL, {"name": "ci", "expires_in": 3600}, format="json")
    assert response.status_code == 201
    data = response.json()
    expires_at = datetime.fromisoformat(data["expires_at"])
    assert abs((expires_at - timezone.now()) - timedelta(hours=1)) < timedelta(seconds=30)
    assert _works(data["token"])

    ApiToken.objects.filter(pk=data["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    body = assert_error(
        APIClient().get("/api/rooms/", **bearer(data["token"])), 401, "authentication_failed"
    )
    assert "expired" in body["detail"]


def test_expires_at_in_the_future_is_kept(alice):
    when = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    response = session_client(alice).post(URL, {"expires_at": when.isoformat()}, format="json")
    assert response.status_code == 201
    assert ApiToken.objects.get().expires_at == when


@pytest.mark.parametrize(
    "data",
    [
        {"expires_in": 0},
        {"expires_in": -5},
        {"expires_in": "soon"},
        {"expires_in": 10**12},
        {"expires_at": "2001-01-01T00:00:00Z"},
        {"expires_at": "9999-01-01T00:00:00Z"},
        {"expires_at": "not a date"},
        {"expires_in": 60, "expires_at": "2099-01-01T00:00:00Z"},
    ],
)
def test_a_bad_expiry_is_a_400_and_creates_nothing(alice, data):
    assert_error(session_client(alice).post(URL, data, format="json"), 400, "invalid")
    assert not ApiToken.objects.exists()


def test_the_token_page_creates_an_expiring_token(alice):
    client = Client()
    client.force_login(alice)
    assert client.post("/account/tokens/", {"name": "bot", "expires": "30d"}).status_code == 200
    token = ApiToken.objects.get()
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert client.post("/account/tokens/", {"name": "x", "expires": "5y"}).status_code == 400
    assert ApiToken.objects.count() == 1


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
    listed = {t["id"]: t for t in session_client(alice).get(URL).json()}
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


def test_command_create_with_expires(alice, lobby):
    output = _command("create", "alice", "--expires", "30d")
    token = ApiToken.objects.get()
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert "expires" in output.splitlines()[0]
    assert _works(output.rstrip().splitlines()[-1])
    for bad in ("0d", "30x", "-1d", "", "99999d"):
        with pytest.raises(CommandError, match="--expires"):
            _command("create", "alice", "--expires", bad)
    assert ApiToken.objects.count() == 1


def test_command_list_shows_hints_and_states_never_tokens(alice, bob):
    active, active_raw = create_token(user=alice, name="laptop")
    revoked, revoked_raw = create_token(user=alice, name="old")
    _command("revoke", str(revoked.pk))
    create_token(user=bob, name="bobs")
    _works(active_raw)
    flush_last_used()

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
