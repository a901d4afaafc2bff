"""/api/rooms/: list, create, retrieve, members, join, leave, invite -- and who may do what.

Every test goes through the real URL conf, authentication (a real API token or a real session),
permissions, throttle, exception handler and the actions the WebSocket uses too.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.last_used import flush_last_used
from accounts.tokens import create_token, revoke_token
from chat import actions
from chat.models import Membership, Message, Room
from config.settings.base import PARLEY
from tests.support.api import CSRF, assert_error, bearer, session_client, token_client
from tests.support.rooms import SECRET_CHANGES

ROOMS = "/api/rooms/"


def _snapshot() -> dict:
    """Everything a refused request must leave as it was."""
    return {
        "rooms": sorted(Room.objects.values_list("slug", "title", "is_private", "last_seq")),
        "members": sorted(
            Membership.objects.values_list("room__slug", "user__username", "role", "last_read_seq")
        ),
        "messages": sorted(Message.objects.values_list("room__slug", "seq", "body")),
    }


# --- list ----------------------------------------------------------------------------------------
def test_list_shows_public_rooms_and_own_private_rooms_with_role_and_unread(
    api, alice, bob, mallory, lobby, secret_room
):
    rooms = {r["slug"]: r for r in _ok(api(alice).get(ROOMS))}
    assert list(rooms) == ["lobby", "secret"]
    assert rooms["secret"] == {
        "slug": "secret",
        "title": "Secret",
        "is_private": True,
        "last_seq": 0,
        "last_change": SECRET_CHANGES,
        "created_at": rooms["secret"]["created_at"],
        "role": "owner",
        "unread": 0,
    }
    assert rooms["lobby"]["role"] == "owner"

    assert [(r["slug"], r["role"]) for r in _ok(api(bob).get(ROOMS))] == [
        ("lobby", "member"),
        ("secret", "member"),
    ]
    # A public room the caller is not in: listed, with no role and no unread count.
    assert _ok(api(mallory).get(ROOMS)) == [
        {**rooms["lobby"], "role": None, "unread": None},
    ]


def test_unread_counts_follow_messages_and_read_positions(alice, bob, mallory, lobby, secret_room):
    for body in ("one", "two", "three"):
        actions.post_message(author=alice, room=lobby, body=body)
    actions.post_message(author=bob, room=secret_room, body="psst")
    actions.mark_read(user=bob, room=lobby, seq=2)

    def unread(user) -> dict:
        return {r["slug"]: r["unread"] for r in _ok(token_client(user).get(ROOMS))}

    assert unread(bob) == {"lobby": 1, "secret": 1}
    assert unread(alice) == {"lobby": 3, "secret": 1}
    assert unread(mallory) == {"lobby": None}

    actions.join_room(user=mallory, room=lobby)
    assert unread(mallory) == {"lobby": 3}  # a new member starts at the beginning


def test_list_has_one_row_per_room_however_many_members(alice, bob, mallory, lobby):
    actions.join_room(user=mallory, room=lobby)
    assert [r["slug"] for r in _ok(token_client(alice).get(ROOMS))] == ["lobby"]


# --- create --------------------------------------------------------------------------------------
def test_create_makes_the_caller_owner(api, alice):
    response = api(alice).post(ROOMS, {"slug": "garden", "title": "Garden"}, format="json")

    assert response.status_code == 201
    data = response.json()
    assert data["slug"] == "garden" and data["title"] == "Garden"
    assert data["is_private"] is False
    assert (data["role"], data["unread"], data["last_seq"]) == ("owner", 0, 0)
    room = Room.objects.get(slug="garden")
    assert list(room.memberships.values_list("user__username", "role")) == [("alice", "owner")]


def test_create_private_room(alice, bob):
    response = token_client(alice).post(
        ROOMS, {"slug": "den", "title": "Den", "is_private": True}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["is_private"] is True
    # Nobody else sees it.
    assert _ok(token_client(bob).get(ROOMS)) == []


def test_create_an_existing_slug_is_a_409_and_changes_nothing(alice, bob, lobby):
    before = _snapshot()
    response = token_client(bob).post(ROOMS, {"slug": "lobby", "title": "Mine"}, format="json")
    assert_error(response, 409, "already_exists")
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"title": "No slug"}, "slug"),
        ({"slug": "no-title"}, "title"),
        ({"slug": "has space", "title": "x"}, "slug"),
        ({"slug": "é", "title": "x"}, "slug"),
        ({"slug": "x" * 65, "title": "x"}, "slug"),
        ({"slug": "ok", "title": "x" * 201}, "title"),
        ({"slug": "ok", "title": "nul\x00"}, "title"),
        ({"slug": "ok", "title": "x", "is_private": "perhaps"}, "is_private"),
    ],
)
def test_create_validation_errors_name_the_field(alice, data, field):
    response = token_client(alice).post(ROOMS, data, format="json")
    body = assert_error(response, 400, "invalid")
    assert list(body["fields"]) == [field]
    assert not Room.objects.exists()


# --- retrieve, members ---------------------------------------------------------------------------
def test_retrieve_and_members_of_a_room_one_belongs_to(api, alice, bob, secret_room):
    client = api(bob)
    room = _ok(client.get(f"{ROOMS}secret/"))
    assert (room["slug"], room["role"], room["unread"]) == ("secret", "member", 0)

    members = _ok(client.get(f"{ROOMS}secret/members/"))
    assert [(m["user"], m["room"], m["role"], m["last_read_seq"]) for m in members] == [
        ("alice", "secret", "owner", 0),
        ("bob", "secret", "member", 0),
    ]
    assert set(members[0]) == {"user", "room", "role", "last_read_seq", "joined_at"}


def test_a_public_room_can_be_read_without_joining(mallory, lobby):
    client = token_client(mallory)
    room = _ok(client.get(f"{ROOMS}lobby/"))
    assert (room["role"], room["unread"]) == (None, None)
    assert [m["user"] for m in _ok(client.get(f"{ROOMS}lobby/members/"))] == ["alice", "bob"]


# --- authorisation: a private room one is not in ------------------------------------------------
OUTSIDER_REQUESTS = [
    ("get", "secret/", None),
    ("get", "secret/members/", None),
    ("get", "secret/messages/", None),
    ("get", "secret/messages/?after_seq=0", None),
    ("post", "secret/messages/", {"body": "let me in"}),
    ("post", "secret/read/", {"seq": 1}),
    ("post", "secret/join/", None),
    ("post", "secret/invite/", {"username": "mallory"}),
    ("post", "secret/leave/", None),
    ("patch", "secret/messages/1/", {"body": "mine now"}),
    ("delete", "secret/messages/1/", None),
]


@pytest.mark.parametrize(("method", "path", "data"), OUTSIDER_REQUESTS)
def test_an_outsider_can_neither_see_nor_change_a_private_room(
    api, alice, bob, mallory, secret_room, method, path, data
):
    actions.post_message(author=alice, room=secret_room, body="top secret")
    before = _snapshot()

    response = getattr(api(mallory), method)(ROOMS + path, data, format="json")

    body = assert_error(response, 404, "not_found")
    assert "top secret" not in response.content.decode()
    assert "fields" not in body
    assert _snapshot() == before
    # Exactly what a room that does not exist answers: nothing tells that "secret" exists.
    missing = getattr(api(mallory), method)(
        ROOMS + path.replace("secret", "nosuch"), data, format="json"
    )
    assert missing.status_code == response.status_code
    assert missing.json() == {**body, "detail": body["detail"].replace("secret", "nosuch")}


@pytest.mark.parametrize(("method", "path", "data"), OUTSIDER_REQUESTS)
def test_an_unknown_room_is_a_404(alice, method, path, data):
    response = getattr(token_client(alice), method)(
        ROOMS + path.replace("secret", "nowhere"), data, format="json"
    )
    assert_error(response, 404, "not_found")


def test_the_room_list_never_shows_a_private_room_to_an_outsider(mallory, secret_room):
    client = token_client(mallory)
    assert _ok(client.get(ROOMS)) == []
    assert b"secret" not in client.get(ROOMS).content


# --- authentication ------------------------------------------------------------------------------
ALL_ENDPOINTS = [
    ("get", "/api/rooms/"),
    ("post", "/api/rooms/"),
    ("get", "/api/rooms/lobby/"),
    ("get", "/api/rooms/lobby/members/"),
    ("post", "/api/rooms/lobby/join/"),
    ("post", "/api/rooms/lobby/leave/"),
    ("post", "/api/rooms/lobby/invite/"),
    ("post", "/api/rooms/lobby/read/"),
    ("get", "/api/rooms/lobby/messages/"),
    ("post", "/api/rooms/lobby/messages/"),
    ("patch", "/api/rooms/lobby/messages/1/"),
    ("delete", "/api/rooms/lobby/messages/1/"),
    ("get", "/api/mentions/"),
    ("post", "/api/mentions/1/read/"),
    ("get", "/api/tokens/"),
    ("post", "/api/tokens/"),
    ("delete", "/api/tokens/1/"),
    ("get", "/api/analytics/summary/"),
]


@pytest.mark.parametrize(("method", "path"), ALL_ENDPOINTS)
def test_anonymous_requests_are_401_with_a_bearer_challenge(lobby, method, path):
    before = _snapshot()
    response = getattr(APIClient(), method)(path, {"body": "x", "seq": 1}, format="json")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert _snapshot() == before


@pytest.mark.parametrize(
    "header",
    [
        "Bearer plt_not-a-real-token",
        "Bearer not-even-the-prefix",
        "bearer plt_" + "x" * 200,
    ],
)
def test_an_unknown_token_is_401(alice, lobby, header):
    response = APIClient().get(ROOMS, HTTP_AUTHORIZATION=header)
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_revoked_token_is_401_everywhere(alice, lobby):
    token, raw = create_token(user=alice, name="old")
    client = APIClient()
    client.credentials(**bearer(raw))
    assert client.get(ROOMS).status_code == 200

    assert revoke_token(token_id=token.pk)
    before = _snapshot()
    for method, path in ALL_ENDPOINTS:
        response = getattr(client, method)(path, {"body": "x"}, format="json")
        assert_error(response, 401, "authentication_failed")
    assert _snapshot() == before


def test_a_token_of_a_deactivated_user_is_401(alice, lobby):
    client = token_client(alice)
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    assert_error(client.get(ROOMS), 401, "authentication_failed")


def test_an_invalid_token_is_refused_even_with_a_valid_session(alice, lobby):
    client = session_client(alice)
    client.credentials(HTTP_AUTHORIZATION="Bearer plt_wrong")
    assert_error(client.get(ROOMS), 401, "authentication_failed")


def test_the_token_records_when_it_was_last_used(alice, lobby):
    token, raw = create_token(user=alice)
    assert token.last_used_at is None
    APIClient().get(ROOMS, **bearer(raw))
    flush_last_used()  # the uses a process noted are written together (accounts.last_used)
    token.refresh_from_db()
    assert token.last_used_at is not None


# --- CSRF: sessions need it for writes, tokens do not --------------------------------------------
def test_a_session_write_without_csrf_is_refused(alice, lobby):
    client = session_client(alice, enforce_csrf_checks=True)
    assert client.get(ROOMS).status_code == 200  # reads need no CSRF token

    response = client.post(ROOMS, {"slug": "garden", "title": "Garden"}, format="json")
    body = assert_error(response, 403, "permission_denied")
    assert "CSRF" in body["detail"]
    response = client.post(f"{ROOMS}lobby/messages/", {"body": "hi"}, format="json")
    assert_error(response, 403, "permission_denied")
    assert not Room.objects.filter(slug="garden").exists()
    assert not Message.objects.exists()


def test_a_session_write_with_the_csrf_token_is_accepted(alice, lobby):
    client = session_client(alice, enforce_csrf_checks=True)
    client.cookies["csrftoken"] = CSRF
    response = client.post(
        ROOMS, {"slug": "garden", "title": "Garden"}, format="json", HTTP_X_CSRFTOKEN=CSRF
    )
    assert response.status_code == 201


def test_a_token_write_needs_no_csrf_token(alice, lobby):
    client = token_client(alice, enforce_csrf_checks=True)
    response = client.post(ROOMS, {"slug": "garden", "title": "Garden"}, format="json")
    assert response.status_code == 201


# --- join ----------------------------------------------------------------------------------------
def test_join_a_public_room_is_idempotent(api, alice, mallory, lobby):
    client = api(mallory)
    first = _ok(client.post(f"{ROOMS}lobby/join/"))
    assert (first["user"], first["room"], first["role"], first["last_read_seq"]) == (
        "mallory",
        "lobby",
        "member",
        0,
    )
    assert _ok(client.post(f"{ROOMS}lobby/join/")) == first
    assert Membership.objects.filter(user=mallory, room=lobby).count() == 1


def test_joining_keeps_the_role_of_an_owner(alice, lobby):
    membership = _ok(token_client(alice).post(f"{ROOMS}lobby/join/"))
    assert membership["role"] == "owner"


# --- leave ---------------------------------------------------------------------------------------
def test_leave_is_idempotent(api, alice, bob, lobby):
    client = api(bob)
    response = client.post(f"{ROOMS}lobby/leave/")
    assert response.status_code == 204
    assert response.content == b""
    assert not Membership.objects.filter(user=bob, room=lobby).exists()

    # Again, and by someone who never was a member: nothing changes, still 204.
    assert client.post(f"{ROOMS}lobby/leave/").status_code == 204
    before = _snapshot()
    assert (
        token_client(get_user_model().objects.create_user("zed"))
        .post(f"{ROOMS}lobby/leave/")
        .status_code
        == 204
    )
    assert _snapshot() == before


def test_after_leaving_a_private_room_it_is_out_of_reach(alice, bob, secret_room):
    client = token_client(bob)
    assert client.post(f"{ROOMS}secret/leave/").status_code == 204
    assert not Membership.objects.filter(user=bob, room=secret_room).exists()

    # Leaving again changes nothing: the room is now private to bob like to any outsider.
    before = _snapshot()
    assert_error(client.post(f"{ROOMS}secret/leave/"), 404, "not_found")
    assert_error(client.get(f"{ROOMS}secret/"), 404, "not_found")
    assert_error(client.post(f"{ROOMS}secret/join/"), 404, "not_found")
    assert _snapshot() == before
    assert [r["slug"] for r in _ok(client.get(ROOMS))] == []


# --- invite --------------------------------------------------------------------------------------
def test_the_owner_invites_into_a_private_room(api, alice, mallory, secret_room):
    response = api(alice).post(f"{ROOMS}secret/invite/", {"username": "mallory"}, format="json")

    membership = _ok(response)
    assert (membership["user"], membership["room"], membership["role"]) == (
        "mallory",
        "secret",
        "member",
    )
    # Now mallory is in.
    mallory_client = token_client(mallory)
    assert _ok(mallory_client.get(f"{ROOMS}secret/"))["role"] == "member"
    assert [r["slug"] for r in _ok(mallory_client.get(ROOMS))] == ["secret"]


def test_invite_is_idempotent(alice, mallory, secret_room):
    client = token_client(alice)
    first = _ok(client.post(f"{ROOMS}secret/invite/", {"username": "mallory"}, format="json"))
    assert _ok(client.post(f"{ROOMS}secret/invite/", {"username": "mallory"}, format="json")) == (
        first
    )
    assert Membership.objects.filter(user=mallory, room=secret_room).count() == 1
    # Inviting a member keeps their role.
    owner = _ok(client.post(f"{ROOMS}secret/invite/", {"username": "alice"}, format="json"))
    assert owner["role"] == "owner"


def test_a_moderator_invites(alice, bob, mallory, secret_room):
    Membership.objects.filter(user=bob, room=secret_room).update(role=Membership.Role.MODERATOR)
    response = token_client(bob).post(
        f"{ROOMS}secret/invite/", {"username": "mallory"}, format="json"
    )
    assert _ok(response)["user"] == "mallory"


def test_a_plain_member_may_not_invite(alice, bob, mallory, secret_room):
    before = _snapshot()
    response = token_client(bob).post(
        f"{ROOMS}secret/invite/", {"username": "mallory"}, format="json"
    )
    assert_error(response, 403, "forbidden")
    assert _snapshot() == before


def test_nobody_invites_into_a_public_room(alice, mallory, lobby):
    before = _snapshot()
    response = token_client(alice).post(
        f"{ROOMS}lobby/invite/", {"username": "mallory"}, format="json"
    )
    assert_error(response, 400, "public_room")
    assert _snapshot() == before


def test_inviting_an_unknown_user_is_a_404(alice, secret_room):
    before = _snapshot()
    response = token_client(alice).post(
        f"{ROOMS}secret/invite/", {"username": "ghost"}, format="json"
    )
    assert_error(response, 404, "no_such_user")
    assert _snapshot() == before


@pytest.mark.parametrize("username", ["mallory", "ghost"])
def test_who_may_not_invite_learns_nothing_about_a_username(alice, bob, mallory, secret_room,
                                                             username):  # fmt: skip
    """A plain member (or an outsider, to whom the room does not exist) is refused before the
    name is looked up: the answer is the same for a user and for no one."""
    for client, status, code in ((token_client(bob), 403, "forbidden"),
                                 (token_client(mallory), 404, "not_found")):  # fmt: skip
        response = client.post(f"{ROOMS}secret/invite/", {"username": username}, format="json")
        body = assert_error(response, status, code)
        assert username not in body["detail"]


@pytest.mark.parametrize("data", [{}, {"username": ""}, {"username": "x" * 151}, {"user": "bob"}])
def test_invite_needs_a_username(alice, secret_room, data):
    body = assert_error(
        token_client(alice).post(f"{ROOMS}secret/invite/", data, format="json"), 400, "invalid"
    )
    assert list(body["fields"]) == ["username"]


# --- method and throttle -------------------------------------------------------------------------
def test_an_unsupported_method_is_405_in_the_error_shape(alice, lobby):
    response = token_client(alice).delete(f"{ROOMS}lobby/")
    assert_error(response, 405, "method_not_allowed")


def test_writes_are_throttled_per_user_with_retry_after(alice, bob, lobby):
    client = token_client(alice)
    with override_settings(PARLEY={**PARLEY, "API_WRITES_PER_MINUTE": 2}):
        assert client.post(f"{ROOMS}lobby/join/").status_code == 200
        assert client.post(f"{ROOMS}lobby/join/").status_code == 200
        response = client.post(ROOMS, {"slug": "garden", "title": "Garden"}, format="json")
        assert_error(response, 429, "throttled")
        assert 1 <= int(response["Retry-After"]) <= 60  # what is left of the minute
        assert not Room.objects.filter(slug="garden").exists()
        # Reads are not limited, and the limit is the user's, not everyone's.
        assert client.get(ROOMS).status_code == 200
        assert token_client(bob).post(f"{ROOMS}lobby/join/").status_code == 200


def _ok(response):
    assert response.status_code == 200, (response.status_code, response.content[:500])
    assert response["Content-Type"] == "application/json"
    return response.json()
