"""The pages through Django's test client: who may open what, and that every form goes through
the actions (so the database changes and the events are published as for any other caller)."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat import actions
from chat.models import Membership, Mention, Message, OutboxEvent, Room

pytestmark = pytest.mark.django_db


def _client(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.fixture
def as_alice(alice) -> Client:
    return _client(alice)


@pytest.fixture
def as_bob(bob) -> Client:
    return _client(bob)


@pytest.fixture
def as_mallory(mallory) -> Client:
    return _client(mallory)


def _mention(user, room, author, body):
    message = actions.post_message(author=author, room=room, body=body).message
    return Mention.objects.create(user=user, message=message)


def _room_events(type_):
    """Membership events the actions recorded (the outbox publishes each after commit)."""
    return [e.event for e in OutboxEvent.objects.filter(type=type_).order_by("id")]


# --- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/", "/rooms/lobby/", "/rooms/secret/", "/mentions/", "/dm/bob/", "/dm/?username=bob"],
)
def test_anonymous_is_sent_to_the_login_page(url, lobby, secret_room):
    response = Client().get(url)
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/?next=")


@pytest.mark.parametrize(
    "url",
    ["/rooms/", "/rooms/lobby/join/", "/rooms/lobby/leave/", "/rooms/secret/invite/"],
)
def test_anonymous_posts_change_nothing(url, lobby, secret_room):
    before = list(Membership.objects.values_list("pk", flat=True))
    response = Client().post(url, {"slug": "x", "title": "X", "username": "mallory"})
    assert response.status_code == 302 and "/accounts/login/" in response.url
    assert list(Membership.objects.values_list("pk", flat=True)) == before
    assert not Room.objects.filter(slug="x").exists()


def test_every_page_opens_for_a_member(as_alice, lobby, secret_room):
    for url in ["/", "/rooms/lobby/", "/rooms/secret/", "/mentions/", "/account/tokens/"]:
        assert as_alice.get(url).status_code == 200, url


def test_a_private_room_is_not_found_for_a_non_member(as_mallory, secret_room):
    assert as_mallory.get("/rooms/secret/").status_code == 404
    assert as_mallory.get("/rooms/nowhere/").status_code == 404
    # Nor can a stranger join, leave or invite through its forms.
    for action in ("join", "leave", "invite"):
        response = as_mallory.post(f"/rooms/secret/{action}/", {"username": "mallory"})
        assert response.status_code == 404, action
    assert not Membership.objects.filter(user__username="mallory").exists()


def test_home_lists_public_and_own_private_rooms_with_unread_counts(
    as_bob, as_mallory, alice, bob, lobby, secret_room
):
    for n in range(3):
        actions.post_message(author=alice, room=lobby, body=f"hello {n}")
    actions.post_message(author=alice, room=secret_room, body="psst")
    actions.mark_read(user=bob, room=lobby, seq=1)
    actions.create_room(creator=alice, slug="quiet", title="Quiet")

    page = as_bob.get("/").content.decode()
    assert 'href="/rooms/lobby/"' in page and 'href="/rooms/secret/"' in page
    assert _unread(page, "lobby") == "2"
    assert _unread(page, "secret") == "1"
    assert _unread(page, "quiet") is None  # not a member: no count, a join button
    assert 'action="/rooms/quiet/join/"' in page and 'action="/rooms/lobby/leave/"' in page

    strangers = as_mallory.get("/").content.decode()
    assert 'href="/rooms/lobby/"' in strangers and "/rooms/secret/" not in strangers
    assert "Secret" not in strangers


def _unread(page: str, slug: str) -> str | None:
    row = re.search(rf'<li class="room-row" data-slug="{slug}">(.*?)</li>', page, re.S)
    assert row, f"no row for {slug}"
    # The badge is always there (the page updates it live) but hidden when nothing is unread.
    count = re.search(r'<span class="badge unread"(?![^>]*hidden)[^>]*>(\d+)</span>', row.group(1))
    return count.group(1) if count else None


def test_the_room_page_hands_its_data_to_the_script(as_bob, alice, bob, lobby):
    for n in range(25):
        actions.post_message(author=alice, room=lobby, body=f"m{n}")
    actions.mark_read(user=bob, room=lobby, seq=5)
    page = as_bob.get("/rooms/lobby/").content.decode()
    data = json.loads(
        re.search(r'<script id="room-data" type="application/json">(.*?)</script>', page).group(1)
    )
    assert data["slug"] == "lobby" and data["me"] == "bob" and data["isMember"] is True
    assert data["historyFrom"] == 0  # 25 messages: the socket replays them all
    assert data["lastReadSeq"] == 5
    assert data["messagesUrl"] == "/api/rooms/lobby/messages/"
    assert data["readUrl"] == "/api/rooms/lobby/read/"
    assert data["csrfToken"]
    assert 'src="/static/parley/room.js"' in page and 'type="module"' in page
    assert '<script type="module">' not in page  # no inline script any more


def _room_data(client, url: str) -> dict:
    page = client.get(url).content.decode()
    found = re.search(r'<script id="room-data" type="application/json">(.*?)</script>', page)
    return json.loads(found.group(1))


def test_a_room_opens_at_the_first_unread_or_the_linked_message(as_bob, alice, bob, lobby):
    """The socket replays from a little before where the room opens, never more than
    MAX_REPLAY messages; a ?seq outside the room is ignored, one that is not a number is a 400."""
    Message.objects.bulk_create(
        [Message(room=lobby, author=alice, body=f"m{n}", seq=n, change=n) for n in range(1, 1501)]
    )
    Room.objects.filter(pk=lobby.pk).update(last_seq=1500, last_change=1500)
    actions.mark_read(user=bob, room=lobby, seq=1400)
    data = _room_data(as_bob, "/rooms/lobby/")
    assert (data["firstUnread"], data["highlightSeq"], data["historyFrom"]) == (1401, None, 1390)
    data = _room_data(as_bob, "/rooms/lobby/?seq=1460")
    assert (data["highlightSeq"], data["historyFrom"]) == (1460, 1449)
    data = _room_data(as_bob, "/rooms/lobby/?seq=20")
    assert (data["highlightSeq"], data["historyFrom"]) == (20, 500)  # at most 1,000 replayed
    assert _room_data(as_bob, "/rooms/lobby/?seq=9999")["highlightSeq"] is None
    actions.mark_read(user=bob, room=lobby, seq=1500)
    data = _room_data(as_bob, "/rooms/lobby/")
    assert (data["firstUnread"], data["historyFrom"]) == (None, 1450)
    response = as_bob.get("/rooms/lobby/?seq=1e3")
    assert response.status_code == 400
    assert response.content == b"seq must be a message number"


def test_the_sidebar_lists_your_rooms_by_recent_activity(as_alice, alice, bob, lobby):
    garden = actions.create_room(creator=bob, slug="garden", title="Garden")
    actions.join_room(user=alice, room=garden)
    actions.create_room(creator=bob, slug="elsewhere", title="Not joined")
    actions.open_direct_room(user=alice, other=bob)
    actions.post_message(author=bob, room=garden, body="<b>newest</b>")
    page = as_alice.get("/rooms/lobby/").content.decode()
    sidebar = page[page.index('id="sidebar"') : page.index("</aside>")]
    assert [m for m in re.findall(r'data-slug="([^"]+)"', sidebar)] == [
        "garden",
        "lobby",
        actions.direct_room_slug(alice, bob),
    ]
    assert "bob: &lt;b&gt;newest&lt;/b&gt;" in sidebar
    assert "elsewhere" not in sidebar


# --- sign up --------------------------------------------------------------------------------


def test_sign_up_creates_the_user_and_logs_them_in():
    client = Client()
    assert client.get("/accounts/signup/").status_code == 200
    response = client.post(
        "/accounts/signup/",
        {"username": "carol", "password1": "a-Long-pass-123", "password2": "a-Long-pass-123"},
    )
    assert response.status_code == 302 and response.url == "/"
    carol = get_user_model().objects.get(username="carol")
    assert carol.check_password("a-Long-pass-123")
    assert client.get("/").status_code == 200  # logged in
    assert int(client.session["_auth_user_id"]) == carol.pk


def test_sign_up_refuses_mismatched_passwords_and_taken_names(alice):
    client = Client()
    response = client.post(
        "/accounts/signup/",
        {"username": "carol", "password1": "a-Long-pass-123", "password2": "other-Pass-456"},
    )
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    response = client.post(
        "/accounts/signup/",
        {"username": "alice", "password1": "a-Long-pass-123", "password2": "a-Long-pass-123"},
    )
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["alice"]
    assert "_auth_user_id" not in client.session


# --- forms call the actions -----------------------------------------------------------------


def test_create_room_form(as_alice, alice):
    response = as_alice.post("/rooms/", {"slug": "garden", "title": "Garden", "is_private": "on"})
    assert response.status_code == 302 and response.url == "/rooms/garden/"
    room = Room.objects.get(slug="garden")
    assert room.is_private and room.title == "Garden"
    assert Membership.objects.get(room=room).role == Membership.Role.OWNER
    assert [e["room"] for e in _room_events("room.joined")] == ["garden"]

    public = as_alice.post("/rooms/", {"slug": "porch", "title": "Porch"})
    assert public.status_code == 302 and not Room.objects.get(slug="porch").is_private


@pytest.mark.parametrize(
    "data",
    [
        {"slug": "lobby", "title": "Again"},  # taken
        {"slug": "not a slug", "title": "Spaces"},
        {"slug": "dm-1-2", "title": "Reserved"},
        {"slug": "ok", "title": ""},
    ],
)
def test_create_room_form_refuses_bad_input(as_alice, lobby, data):
    response = as_alice.post("/rooms/", data)
    assert response.status_code == 400
    assert "errorlist" in response.content.decode()
    assert list(Room.objects.values_list("slug", flat=True)) == ["lobby"]


def test_join_and_leave_a_public_room(as_mallory, mallory, lobby):
    response = as_mallory.post("/rooms/lobby/join/", {"next": "/"})
    assert response.status_code == 302 and response.url == "/"
    assert Membership.objects.filter(user=mallory, room=lobby).exists()

    response = as_mallory.post("/rooms/lobby/leave/")
    assert response.status_code == 302 and response.url == "/"
    assert not Membership.objects.filter(user=mallory, room=lobby).exists()
    assert [e["payload"]["user"] for e in _room_events("room.left")] == ["mallory"]


def test_join_redirects_only_within_the_site(as_mallory, lobby):
    response = as_mallory.post("/rooms/lobby/join/", {"next": "https://evil.example/"})
    assert response.url == "/rooms/lobby/"


def test_leave_from_the_room_page(as_bob, bob, secret_room):
    assert as_bob.post("/rooms/secret/leave/").status_code == 302
    assert not Membership.objects.filter(user=bob, room=secret_room).exists()
    assert as_bob.get("/rooms/secret/").status_code == 404  # private: gone for bob


def test_owner_removes_a_member_from_the_room_page(as_alice, as_bob, alice, bob, secret_room):
    page = as_alice.get("/rooms/secret/").content.decode()
    assert 'aria-label="Remove bob from the room"' in page
    assert "Remove alice" not in page  # nobody removes the owner (or themselves)
    assert "remove-member" not in as_bob.get("/rooms/secret/").content.decode()

    response = as_alice.post("/rooms/secret/remove/", {"username": "bob"})
    assert response.status_code == 302
    assert not Membership.objects.filter(user=bob, room=secret_room).exists()
    assert [e["payload"]["user"] for e in _room_events("room.left")] == ["bob"]
    assert as_bob.get("/rooms/secret/").status_code == 404  # private: gone for bob


def test_removing_members_is_refused_unless_allowed(as_alice, as_bob, alice, bob, mallory, lobby):
    actions.join_room(user=mallory, room=lobby)
    # A plain member removes nobody; nobody removes the owner; a direct room keeps its two.
    as_bob.post("/rooms/lobby/remove/", {"username": "mallory"})
    as_bob.post("/rooms/lobby/remove/", {"username": "alice"})
    Membership.objects.filter(user=bob, room=lobby).update(role=Membership.Role.MODERATOR)
    as_bob.post("/rooms/lobby/remove/", {"username": "alice"})
    direct = actions.open_direct_room(user=alice, other=bob)
    as_alice.post(f"/rooms/{direct.slug}/remove/", {"username": "bob"})
    as_alice.post("/rooms/lobby/remove/", {"username": "nobody"})
    assert Membership.objects.filter(room=lobby).count() == 3
    assert Membership.objects.filter(room=direct).count() == 2
    assert _room_events("room.left") == []
    # A moderator removes a plain member, but not another moderator (only the owner does).
    Membership.objects.filter(user=mallory, room=lobby).update(role=Membership.Role.MODERATOR)
    as_bob.post("/rooms/lobby/remove/", {"username": "mallory"})
    assert Membership.objects.filter(user=mallory, room=lobby).exists()
    Membership.objects.filter(user=mallory, room=lobby).update(role=Membership.Role.MEMBER)
    as_bob.post("/rooms/lobby/remove/", {"username": "mallory"})
    assert not Membership.objects.filter(user=mallory, room=lobby).exists()
    assert as_bob.get("/rooms/lobby/remove/").status_code == 405


def test_joins_and_leaves_need_post(as_mallory, mallory, lobby):
    assert as_mallory.get("/rooms/lobby/join/").status_code == 405
    assert as_mallory.get("/rooms/lobby/leave/").status_code == 405
    assert as_mallory.get("/rooms/").status_code == 405
    assert not Membership.objects.filter(user=mallory).exists()


def test_owner_invites_to_a_private_room(as_alice, mallory, secret_room):
    page = as_alice.get("/rooms/secret/").content.decode()
    assert 'id="invite-form"' in page and 'id="leave-form"' in page

    response = as_alice.post("/rooms/secret/invite/", {"username": "mallory"})
    assert response.status_code == 302 and response.url == "/rooms/secret/"
    assert Membership.objects.get(user=mallory, room=secret_room).role == Membership.Role.MEMBER
    assert [e["payload"]["user"] for e in _room_events("room.joined")][-1] == "mallory"
    assert "mallory is a member now" in as_alice.get("/rooms/secret/").content.decode()


def test_a_plain_member_cannot_invite(as_bob, mallory, secret_room):
    page = as_bob.get("/rooms/secret/").content.decode()
    assert 'id="invite-form"' not in page
    response = as_bob.post("/rooms/secret/invite/", {"username": "mallory"}, follow=True)
    assert "only the room&#x27;s owner and moderators invite" in response.content.decode()
    assert not Membership.objects.filter(user=mallory, room=secret_room).exists()


def test_inviting_nobody_or_to_a_public_room_changes_nothing(as_alice, lobby, secret_room):
    before = Membership.objects.count()
    response = as_alice.post("/rooms/secret/invite/", {"username": "ghost"}, follow=True)
    assert "there is no user &#x27;ghost&#x27;" in response.content.decode()
    as_alice.post("/rooms/lobby/invite/", {"username": "bob"})
    assert Membership.objects.count() == before


def test_csrf_is_enforced_on_every_form(alice, mallory, lobby, secret_room):
    for user, url, data in [
        (alice, "/rooms/", {"slug": "garden", "title": "Garden"}),
        (mallory, "/rooms/lobby/join/", {}),
        (alice, "/rooms/lobby/leave/", {}),
        (alice, "/rooms/secret/invite/", {"username": "mallory"}),
    ]:
        assert _client(user, csrf=True).post(url, data).status_code == 403, url
    anonymous = Client(enforce_csrf_checks=True)
    data = {"username": "carol", "password1": "a-Long-pass-123", "password2": "a-Long-pass-123"}
    assert anonymous.post("/accounts/signup/", data).status_code == 403
    assert not Room.objects.filter(slug="garden").exists()
    assert Membership.objects.filter(user=alice, room=lobby).exists()
    assert not Membership.objects.filter(user=mallory).exists()
    assert not get_user_model().objects.filter(username="carol").exists()


def test_csrf_token_in_a_form_is_accepted(alice):
    client = _client(alice, csrf=True)
    page = client.get("/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = {"slug": "garden", "title": "Garden", "csrfmiddlewaretoken": token}
    assert client.post("/rooms/", data).status_code == 302
    assert Room.objects.filter(slug="garden").exists()


# --- direct messages ------------------------------------------------------------------------


def test_direct_room_is_private_with_exactly_two_members_and_reused(as_alice, alice, bob):
    response = as_alice.post("/dm/bob/")
    assert response.status_code == 302
    room = Room.objects.get()
    low, high = sorted([alice.pk, bob.pk])
    assert room.slug == f"dm-{low}-{high}" and response.url == f"/rooms/{room.slug}/"
    assert room.is_private and room.title == "alice & bob"
    assert set(room.memberships.values_list("user__username", flat=True)) == {"alice", "bob"}
    joined = {e["payload"]["user"] for e in _room_events("room.joined") if e["room"] == room.slug}
    assert joined == {"alice", "bob"}

    # The second visit, by either of them, opens the same room.
    assert as_alice.post("/dm/bob/").url == f"/rooms/{room.slug}/"
    as_bob = _client(bob)
    assert as_bob.post("/dm/", {"username": "alice"}).url == f"/rooms/{room.slug}/"
    assert as_bob.get("/dm/alice/").url == f"/rooms/{room.slug}/"  # GET finds it
    assert Room.objects.count() == 1 and room.memberships.count() == 2
    assert as_bob.get(f"/rooms/{room.slug}/").status_code == 200


def test_direct_rooms_are_listed_by_the_other_name_and_closed_to_others(as_alice, as_mallory, bob):
    slug = as_alice.post("/dm/bob/").url.split("/")[2]
    home = as_alice.get("/").content.decode()
    direct = re.search(r'<ul class="rooms" id="direct-rooms">(.*?)</ul>', home, re.S).group(1)
    assert f'href="/rooms/{slug}/">bob</a>' in direct
    rooms = re.search(r'<ul class="rooms" id="rooms">(.*?)</ul>', home, re.S).group(1)
    assert slug not in rooms
    assert as_mallory.get(f"/rooms/{slug}/").status_code == 404
    page = as_alice.get(f"/rooms/{slug}/").content.decode()
    assert 'id="invite-form"' not in page  # always exactly two


def test_direct_room_edge_cases(as_alice, alice, bob):
    assert as_alice.post("/dm/nobody/").url == "/"
    assert as_alice.post("/dm/alice/").url == "/"  # not with yourself
    assert as_alice.post("/dm/", {"username": ""}).url == "/"
    response = as_alice.post("/dm/", {"username": "no/body"}, follow=True)
    assert "there is no user &#x27;no/body&#x27;" in response.content.decode()
    assert not Room.objects.exists()
    room = actions.open_direct_room(user=alice, other=bob)
    with pytest.raises(actions.ActionError) as refused:
        actions.invite(
            inviter=alice, room=room, invitee=get_user_model().objects.create(username="carol")
        )
    assert refused.value.code == "direct_room"


@pytest.mark.parametrize("url", ["/dm/bob/", "/dm/nobody/", "/dm/?username=bob", "/dm/alice/"])
def test_get_on_a_direct_url_changes_nothing(as_alice, alice, bob, url):
    """A link or an <img src> on another site must not make rooms in the visitor's name, nor
    tell whether a username exists: GET answers alike for any name, with a button to POST."""
    response = as_alice.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'method="post" action="/dm/"' in page and "csrfmiddlewaretoken" in page
    assert not Room.objects.exists() and not Membership.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_opening_a_direct_room_needs_the_csrf_token(alice, bob):
    client = _client(alice, csrf=True)
    assert client.post("/dm/bob/").status_code == 403
    assert client.post("/dm/", {"username": "bob"}).status_code == 403
    page = client.get("/").content.decode()
    form = re.search(
        r'<form method="post" action="/dm/"[^>]*id="direct-form">(.*?)</form>', page, re.S
    )
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.group(1)).group(1)
    response = client.post("/dm/", {"username": "bob", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and Room.objects.get().slug.startswith("dm-")


def test_the_member_list_opens_a_direct_room_by_post(as_alice, secret_room):
    page = as_alice.get("/rooms/secret/").content.decode()
    members = re.search(r'<ul id="member-list">(.*?)</ul>', page, re.S).group(1)
    assert 'href="/dm/' not in members
    assert re.search(r'<form method="post" action="/dm/".*?name="username" value="bob"', members)


def test_someone_who_left_a_direct_room_is_back_on_the_next_visit(as_alice, alice, bob):
    slug = as_alice.post("/dm/bob/").url.split("/")[2]
    actions.leave_room(user=bob, room=Room.objects.get(slug=slug))
    as_alice.post("/dm/bob/")
    assert Room.objects.get(slug=slug).memberships.count() == 2


def test_a_squatted_direct_slug_is_not_used(as_alice, alice, bob, mallory):
    low, high = sorted([alice.pk, bob.pk])
    with pytest.raises(actions.ActionError):
        actions.create_room(creator=mallory, slug=f"dm-{low}-{high}", title="Trap")
    # One made before the prefix was reserved, with a stranger in it, is refused.
    room = Room.objects.create(slug=f"dm-{low}-{high}", title="Trap", is_private=True)
    Membership.objects.create(user=mallory, room=room, role=Membership.Role.OWNER)
    response = as_alice.post("/dm/bob/", follow=True)
    assert "is not a direct conversation" in response.content.decode()
    assert not room.memberships.filter(user__in=[alice, bob]).exists()


# --- mentions -------------------------------------------------------------------------------


def test_mentions_page_lists_unread_first_newest_first(as_bob, alice, bob, lobby):
    first = _mention(bob, lobby, alice, "@bob first")
    second = _mention(bob, lobby, alice, "@bob second")
    third = _mention(bob, lobby, alice, "@bob third")
    actions.mark_mention_read(user=bob, mention_id=third.pk)

    page = as_bob.get("/mentions/").content.decode()
    ids = [int(i) for i in re.findall(r'data-mention-id="(\d+)"', page)]
    assert ids == [second.pk, first.pk, third.pk]
    unread = re.findall(r'class="mention-row unread" data-mention-id="(\d+)"', page)
    assert [int(i) for i in unread] == [second.pk, first.pk]
    assert 'href="/rooms/lobby/"' in page and "@bob second" in page


def test_mark_a_mention_read(as_bob, as_mallory, alice, bob, lobby):
    mention = _mention(bob, lobby, alice, "hey @bob")
    assert as_mallory.post(f"/mentions/{mention.pk}/read/").status_code == 404
    mention.refresh_from_db()
    assert mention.read_at is None

    response = as_bob.post(f"/mentions/{mention.pk}/read/")
    assert response.status_code == 302 and response.url == "/mentions/"
    mention.refresh_from_db()
    assert mention.read_at is not None
    assert as_bob.get(f"/mentions/{mention.pk}/read/").status_code == 405
    assert (
        _client(bob, csrf=True)
        .post(f"/mentions/{_mention(bob, lobby, alice, '@bob').pk}/read/")
        .status_code
        == 403
    )


def test_mentions_in_a_room_you_left_are_not_listed(as_bob, alice, bob, secret_room):
    _mention(bob, secret_room, alice, "@bob secret plans")
    assert "secret plans" in as_bob.get("/mentions/").content.decode()
    actions.leave_room(user=bob, room=secret_room)
    assert "secret plans" not in as_bob.get("/mentions/").content.decode()


def test_mentions_page_escapes_bodies(as_bob, alice, bob, lobby):
    _mention(bob, lobby, alice, "@bob <script>alert(1)</script>")
    page = as_bob.get("/mentions/").content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
