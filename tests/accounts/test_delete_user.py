"""Deleting a user for good (accounts.actions.delete_user): through the real actions, the real
outbox and Redis streams, the real subscribers' handlers, sessions and tokens.

Before this existed, deleting a user who had posted raised ProtectedError (Message.author).
"""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client, override_settings
from rest_framework.test import APIClient

from accounts.actions import AccountError, delete_user, placeholder_user
from accounts.models import ApiToken
from accounts.tokens import create_token, user_for_token
from analytics import subscriber
from analytics.models import BehaviourRecord, ConnectionSession, UserMinute
from chat import actions, departure, mentions
from chat.models import Membership, Mention, Message, OutboxEvent, Room, RoomEvent
from contract import events
from tests.support.rooms import C
from tests.support.ws import open_socket, session_cookie

db = pytest.mark.django_db(transaction=True)
User = get_user_model()
GONE = "deleted-user"


def post(room, author, body: str) -> Message:
    return actions.post_message(author=author, room=room, body=body).message


def all_events() -> list[events.Event]:
    from tests.support.events import published_events

    return [e for topic in events.TOPICS for e in published_events(topic)]


def bobs_life(alice, bob, mallory, lobby, secret_room) -> dict:
    """bob posts (one edited, one deleted), mentions alice, is mentioned, owns a room, has a
    token and a session; analytics and mentions have seen all of it. Returns what to check."""
    bobs = actions.create_room(creator=bob, slug="bobs", title="Bob's")
    actions.join_room(user=alice, room=bobs)
    actions.join_room(user=mallory, room=bobs)
    Membership.objects.filter(user=mallory, room=bobs).update(role=Membership.Role.MODERATOR)
    mine = [
        post(lobby, bob, "hello @alice"),
        post(lobby, bob, "second"),
        post(secret_room, bob, "psst"),
        post(bobs, bob, "my room"),
    ]
    actions.edit_message(user=bob, message=mine[1], body="second, edited")
    actions.delete_message(user=bob, message=mine[2])
    post(lobby, alice, "hi @bob")
    _, raw = create_token(user=bob, name="bot")
    cookie = session_cookie(bob)
    session_cookie(alice)  # someone else's session, which stays
    feed_subscribers(all_events())
    return {"mine": [m.pk for m in mine], "token": raw, "cookie": cookie}


def feed_subscribers(batch: list[events.Event]) -> None:
    """The analytics and mentions handlers, as their workers call them (in a transaction)."""
    batch = sorted(batch, key=lambda e: e["ts"])
    with transaction.atomic():
        subscriber.handle(batch)
        mentions.handle([e for e in batch if e["topic"] == events.TOPIC_MESSAGE])


def mentions_bob(value: object) -> bool:
    return '"bob"' in json.dumps(value) or "@bob" in json.dumps(value).replace("hi @bob", "")


@db
def test_deleting_a_user_who_posted_releases_everything(alice, bob, mallory, lobby, secret_room):
    life = bobs_life(alice, bob, mallory, lobby, secret_room)
    before = {e["id"] for e in all_events()}
    bob_id = bob.pk
    counted = UserMinute.objects.filter(user="bob").values_list("messages", flat=True)
    bobs_count = sum(counted)
    assert BehaviourRecord.objects.filter(user="bob").exists()
    assert RoomEvent.objects.filter(data__member__user="bob").count() == 2  # lobby, bobs

    done = delete_user(user=bob)

    assert (done.messages, done.memberships, done.tokens, done.sessions) == (4, 3, 1, 1)
    assert done.rooms_handed_over == [("bobs", "mallory")]
    assert not User.objects.filter(username="bob").exists()
    assert not ApiToken.objects.exists()
    assert not Membership.objects.filter(user_id=bob.pk).exists()
    assert not Mention.objects.filter(user_id=bob.pk).exists()
    assert Mention.objects.filter(user=alice).count() == 1  # in bob's (now tombstoned) message
    assert Membership.objects.get(room__slug="bobs", user=mallory).role == "owner"
    placeholder = User.objects.get(username=GONE)
    assert not placeholder.is_active and not placeholder.has_usable_password()
    # Tombstones, attributed to the placeholder, in place (same seqs), bodies gone.
    released = Message.objects.filter(pk__in=life["mine"])
    assert {(m.author_id, m.body, m.deleted_at is not None) for m in released} == {
        (placeholder.pk, "", True)
    }
    assert Message.objects.get(room=lobby, seq=3).body == "hi @bob"  # alice's stays
    # Published like any other change: one message.deleted per message, with the next change
    # numbers of each room, and a room.left per membership (a room event, next); none names
    # bob, nor do the room events kept for replays.
    new = [e for e in all_events() if e["id"] not in before]
    deleted = [e for e in new if e["type"] == events.MESSAGE_DELETED]
    left = [e for e in new if e["type"] == events.ROOM_LEFT]
    # access.revoked closes bob's open sockets (chat.access): by user id, never by name.
    access = [e for e in new if e["type"] == events.ACCESS_REVOKED]
    assert len(new) == len(deleted) + len(left) + len(access)
    assert bob_id in {e["payload"]["user_id"] for e in access}
    assert not any("bob" in e["payload"].values() for e in access)
    assert sorted((e["room"], e["seq"]) for e in deleted) == [
        ("bobs", 1),
        ("lobby", 1),
        ("lobby", 2),
        ("secret", 1),
    ]
    assert {
        (e["payload"]["message"]["author"], e["payload"]["message"]["body"]) for e in deleted
    } == {(GONE, "")}
    for room in Room.objects.all():  # each room's next change numbers, in seq order, then left
        changes = [e["payload"]["change"] for e in deleted + left if e["room"] == room.slug]
        assert changes == list(range(room.last_change - len(changes) + 1, room.last_change + 1))
    assert sorted(e["room"] for e in left) == ["bobs", "lobby", "secret"]
    assert {e["payload"]["user"] for e in left} == {GONE}
    assert {e["payload"]["reason"] for e in left} == {"account_deleted"}
    assert not RoomEvent.objects.filter(data__member__user="bob").exists()
    assert RoomEvent.objects.filter(data__member__user=GONE).count() == 2 + 3  # joined, left
    assert not any(mentions_bob(e) for e in new)
    assert not any(mentions_bob(row.event) for row in OutboxEvent.objects.all())
    # Their credentials authenticate nothing.
    web_login = Client()
    answer = web_login.post("/accounts/login/", {"username": "bob", "password": "pw-bob"})
    assert answer.status_code == 200 and "_auth_user_id" not in web_login.session  # refused
    assert user_for_token(life["token"]) is None
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {life['token']}")
    assert api.get("/api/rooms/").status_code == 401
    signed_in = [s.get_decoded().get("_auth_user_id") for s in Session.objects.all()]
    assert [user for user in signed_in if user] == [str(alice.pk)]
    web = Client()
    web.cookies.load(life["cookie"])
    assert web.get("/account/tokens/").status_code == 302  # to the login page
    # Analytics forgot the username and keeps no bodies; per-user counts moved, not lost.
    feed_subscribers(new)
    records = list(BehaviourRecord.objects.values("user", "payload"))
    assert not any(r["user"] == "bob" or mentions_bob(r["payload"]) for r in records)
    assert not any("body" in r["payload"].get("message", {}) for r in records)
    assert not UserMinute.objects.filter(user="bob").exists()
    gone_count = UserMinute.objects.filter(user=GONE).values_list("messages", flat=True)
    assert sum(gone_count) == bobs_count == 4


@db
def test_anonymize_keeps_the_bodies_under_the_placeholder(alice, bob, lobby, stream_events):
    kept = post(lobby, bob, "keep me")
    removed = post(lobby, bob, "moderated")
    actions.delete_message(user=alice, message=removed)
    before = len(stream_events())

    with override_settings(PARLEY_DELETED_USER_MESSAGES="anonymize"):
        assert delete_user(user=bob).messages == 2

    kept.refresh_from_db()
    assert (kept.author.username, kept.body, kept.edited_at, kept.seq) == (GONE, "keep me", None, 1)
    new = stream_events()[before:]
    # A kept message's event says the author changed (message.edited: the message as it now
    # is, edited_at untouched); a tombstone stays a tombstone with the new author on it.
    assert [(e["type"], e["seq"], e["payload"]["change"]) for e in new] == [
        ("message.edited", 1, C + 4),
        ("message.deleted", 2, C + 5),
    ]
    assert [e["payload"]["message"]["author"] for e in new] == [GONE, GONE]
    assert new[0]["payload"]["message"]["body"] == "keep me"
    assert new[0]["payload"]["message"]["edited_at"] is None


@pytest.mark.asyncio
@db
async def test_open_sockets_see_the_messages_change(lobby, alice, bob):
    sock, _ = await open_socket(alice)
    bobs, _ = await open_socket(bob)
    assert (await bobs.post("soon gone"))["type"] == "message.ack"
    assert (await sock.next(lambda f: f["type"] == "message.new"))["message"]["author"] == "bob"
    await bobs.disconnect()  # closing it is the revocation hook's job, not this action's

    await database_sync_to_async(delete_user)(user=bob)

    frame = await sock.next(lambda f: f["type"] != "message.new")
    assert (frame["type"], frame["change"]) == ("message.deleted", C + 2)
    assert (frame["message"]["author"], frame["message"]["body"]) == (GONE, "")
    await sock.disconnect()


@db
def test_a_late_event_of_the_deleted_user_is_attributed_to_the_placeholder(alice, bob, lobby):
    """An event still on its way to analytics when the user was deleted (posted just before)."""
    post(lobby, bob, "early")
    feed_subscribers(all_events())
    seen = {e["id"] for e in all_events()}
    post(lobby, bob, "late")  # not yet processed by analytics when bob is deleted
    late = [e for e in all_events() if e["id"] not in seen]
    delete_user(user=bob)
    feed_subscribers(late)
    users = set(BehaviourRecord.objects.values_list("user", flat=True))
    assert "bob" not in users and GONE in users
    # Someone who later takes the free name is counted as themself.
    newcomer = User.objects.create_user("bob", password="pw-new")
    actions.join_room(user=newcomer, room=lobby)
    post(lobby, newcomer, "I am new")
    feed_subscribers([e for e in all_events() if e["id"] not in seen | {x["id"] for x in late}])
    assert UserMinute.objects.filter(user="bob").exists()


@db
def test_sockets_sessions_of_analytics_are_attributed(alice, bob, lobby):
    ConnectionSession.objects.create(session="s1", user="bob", room="lobby")
    delete_user(user=bob)
    assert ConnectionSession.objects.get(session="s1").user == GONE


@db
def test_the_placeholder_cannot_be_deleted_nor_taken(alice, bob):
    for name in (GONE, GONE.upper()):  # before its account exists, and after (any case)
        signup = Client().post(
            "/accounts/signup/",
            {"username": name, "password1": "a-Long-pass-1", "password2": "a-Long-pass-1"},
        )
        assert signup.status_code == 200 and "reserved" in signup.content.decode() or (name != GONE)
        assert not User.objects.filter(username=name, is_active=True).exists()
        placeholder = placeholder_user()
    with pytest.raises(AccountError) as err:
        delete_user(user=placeholder)
    assert err.value.code == "placeholder"
    assert User.objects.filter(username=GONE).exists()


@db
def test_a_real_account_holding_the_placeholder_name_is_refused(alice, bob, lobby):
    User.objects.create_user(GONE, password="pw-real")
    post(lobby, bob, "still here")
    with pytest.raises(AccountError) as err:
        delete_user(user=bob)
    assert err.value.code == "placeholder_taken"
    assert User.objects.filter(username="bob").exists()
    assert Message.objects.get().body == "still here"


@db
def test_a_bad_mode_changes_nothing(alice, bob, lobby):
    post(lobby, bob, "stays")
    with pytest.raises(AccountError) as err:
        delete_user(user=bob, mode="shred")
    assert err.value.code == "bad_mode"
    assert User.objects.filter(username="bob").exists()


@db
def test_the_command_deletes_and_refuses_unknown_users(alice, bob, lobby, capsys):
    post(lobby, bob, "bye")
    with pytest.raises(CommandError):
        call_command("user", "delete", "nobody", "--yes")
    call_command("user", "delete", "bob", "--yes", "--mode", "anonymize")
    assert "deleted bob: 1 messages, 1 memberships" in capsys.readouterr().out
    assert Message.objects.get().author.username == GONE
    assert Message.objects.get().body == "bye"


@db
def test_a_room_nobody_else_belongs_to_keeps_its_history_without_owner(alice, bob):
    solo = actions.create_room(creator=bob, slug="solo", title="Solo")
    post(solo, bob, "alone")
    done = delete_user(user=bob)
    assert done.rooms_handed_over == [("solo", None)]
    assert Room.objects.get(slug="solo").last_seq == 1
    assert not Membership.objects.filter(room=solo).exists()


@db
def test_direct_conversations_no_longer_carry_their_name(alice, bob):
    room = actions.open_direct_room(user=alice, other=bob)
    post(room, bob, "just us")
    delete_user(user=bob)
    room.refresh_from_db()
    assert room.title == f"alice & {GONE}"
    assert list(room.memberships.values_list("user__username", "role")) == [("alice", "owner")]


def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw-root"))
    return client


@db
def test_the_admin_user_page_deletes_through_the_action(alice, bob, lobby):
    post(lobby, bob, "on my own page")
    client = admin_client()
    page = client.get(f"/admin/auth/user/{bob.pk}/delete/")
    assert page.status_code == 200 and b"protected" not in page.content
    placeholder = placeholder_user()
    assert client.get(f"/admin/auth/user/{placeholder.pk}/delete/").status_code == 403
    assert client.post(f"/admin/auth/user/{bob.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not User.objects.filter(username="bob").exists()
    assert Message.objects.get().author.username == GONE


@db
def test_the_admin_delete_goes_through_the_action(alice, bob, lobby):
    post(lobby, bob, "admin removes me")
    client = admin_client()
    response = client.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [bob.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not User.objects.filter(username="bob").exists()
    assert Message.objects.get().deleted_at is not None


@db
def test_a_post_racing_the_deletion_rolls_it_all_back(
    alice, bob, lobby, stream_events, monkeypatch
):
    """A post committed between the deletion's look at bob's messages and the account row's
    delete (possible on PostgreSQL): the deletion refuses and nothing of it remains."""
    post(lobby, bob, "first")
    before = len(stream_events())
    forget = departure.forget_published_events

    def post_meanwhile(**kwargs):
        Message.objects.create(room=lobby, author=bob, body="racing")
        return forget(**kwargs)

    monkeypatch.setattr(departure, "forget_published_events", post_meanwhile)
    with pytest.raises(AccountError) as err:
        delete_user(user=bob)
    assert err.value.code == "busy"
    assert User.objects.filter(username="bob").exists()
    assert list(Message.objects.values_list("body", "author__username")) == [("first", "bob")]
    assert Membership.objects.filter(user=bob).exists()
    assert len(stream_events()) == before
