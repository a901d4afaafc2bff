"""Edits and deletes: one action each, pushed live, recoverable after a disconnect or a lost
live event (by the room's change numbers), with seqs kept gapless (deletes are tombstones)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tokens import create_token
from chat import actions
from chat.models import Message, Room
from tests.support.rooms import C
from tests.support.ws import open_socket

db = pytest.mark.django_db(transaction=True)


def post(room, author, body: str) -> Message:
    return actions.post_message(author=author, room=room, body=body).message


# --- actions -----------------------------------------------------------------------------------
@db
def test_the_author_edits_and_the_change_is_published(lobby, alice, stream_events):
    message = post(lobby, alice, "typo")
    edited = actions.edit_message(user=alice, message=message, body="fixed")

    assert (edited.body, edited.seq, edited.change) == ("fixed", 1, C + 2)
    assert edited.edited_at is not None
    assert Room.objects.get(pk=lobby.pk).last_change == C + 2
    created, changed = stream_events()
    assert (changed["type"], changed["seq"], changed["payload"]["change"]) == (
        "message.edited",
        1,
        C + 2,
    )
    assert changed["payload"]["message"]["body"] == "fixed"


@db
def test_only_the_author_edits(lobby, alice, bob):
    message = post(lobby, alice, "mine")
    with pytest.raises(actions.ActionError) as err:
        actions.edit_message(user=bob, message=message, body="yours now")
    assert err.value.code == "forbidden"
    assert Message.objects.get().body == "mine"


@db
def test_edits_are_validated_like_posts(lobby, alice):
    message = post(lobby, alice, "ok")
    for body, code in (("", "body_required"), ("x" * 4001, "body_too_long")):
        with pytest.raises(actions.ActionError) as err:
            actions.edit_message(user=alice, message=message, body=body)
        assert err.value.code == code
    assert Room.objects.get(pk=lobby.pk).last_change == C + 1


@db
def test_delete_leaves_a_tombstone_and_keeps_seqs_gapless(lobby, alice, bob, stream_events):
    first, second = post(lobby, bob, "one"), post(lobby, bob, "two")
    deleted = actions.delete_message(user=bob, message=first)

    assert (deleted.body, deleted.seq) == ("", 1)
    assert deleted.deleted_at is not None
    assert list(Message.objects.values_list("seq", flat=True)) == [1, 2]
    assert stream_events()[-1]["type"] == "message.deleted"
    # Deleting again changes nothing; a deleted message cannot be edited.
    assert actions.delete_message(user=bob, message=deleted).change == deleted.change
    with pytest.raises(actions.ActionError) as err:
        actions.edit_message(user=bob, message=deleted, body="back")
    assert err.value.code == "message_deleted"
    with pytest.raises(TypeError):
        second.delete()


@db
def test_who_may_delete(lobby, alice, bob, mallory):
    by_bob = post(lobby, bob, "bob's")
    with pytest.raises(actions.ActionError):
        actions.delete_message(user=mallory, message=by_bob)  # another user
    actions.delete_message(user=alice, message=by_bob)  # the room's owner moderates
    staff = get_user_model().objects.create_user("staff", is_staff=True)
    actions.delete_message(user=staff, message=post(lobby, bob, "again"))
    assert Message.objects.filter(deleted_at__isnull=False).count() == 2


# --- live push and recovery over the WebSocket ---------------------------------------------------
@pytest.mark.asyncio
@db
async def test_edits_and_deletes_reach_every_socket(lobby, alice, bob):
    a, _ = await open_socket(alice)
    b, _ = await open_socket(bob)
    ack = await a.post("hello")
    message = await database_sync_to_async(Message.objects.get)(seq=ack["message"]["seq"])

    await database_sync_to_async(actions.edit_message)(user=alice, message=message, body="hi")
    await database_sync_to_async(actions.delete_message)(user=alice, message=message)

    for sock in (a, b):
        frames = [await sock.next(lambda f: f["type"] != "message.ack") for _ in range(3)]
        assert [(f["type"], f["change"]) for f in frames] == [
            ("message.new", C + 1),
            ("message.edited", C + 2),
            ("message.deleted", C + 3),
        ]
        assert frames[1]["message"]["body"] == "hi" and frames[1]["message"]["edited_at"]
        assert frames[2]["message"]["body"] == "" and frames[2]["message"]["deleted_at"]
        await sock.disconnect()


@pytest.mark.asyncio
@db
async def test_resume_replays_new_messages_then_changes_to_older_ones(lobby, alice, bob):
    for body in ("one", "two", "three"):
        await database_sync_to_async(post)(lobby, alice, body)

    def while_bob_is_away():
        m1, m2 = Message.objects.select_related("room", "author").filter(seq__in=(1, 2))
        actions.edit_message(user=alice, message=m2, body="two, edited")  # change C + 4
        m4 = post(lobby, alice, "four")  # change C + 5
        actions.delete_message(user=alice, message=m1)  # change C + 6
        actions.edit_message(user=alice, message=m4, body="four, edited")  # change C + 7

    await database_sync_to_async(while_bob_is_away)()
    sock, first = await open_socket(bob, query=f"after_seq=3&after_change={C + 3}")
    frames = [first]
    while frames[-1]["type"] != "sync.done":
        frames.append(await sock.recv())

    # Replay frames: a new message carries no change number (it is no resume position), an
    # older message's edit or delete does (they come in change order).
    assert [(f["type"], f["message"]["seq"], f.get("change")) for f in frames[:-1]] == [
        ("message.new", 4, None),  # the new message as it now is
        ("message.edited", 2, C + 4),
        ("message.deleted", 1, C + 6),
    ]
    assert all(f["replay"] is True for f in frames[:-1])
    assert frames[0]["message"]["body"] == "four, edited"
    assert frames[-1] == {"type": "sync.done", "seq": 4, "change": C + 7}
    await database_sync_to_async(post)(lobby, alice, "five")
    live = await sock.recv()
    assert (live["type"], live["message"]["seq"], live["change"]) == ("message.new", 5, C + 8)
    await sock.disconnect()


@pytest.mark.asyncio
@db
async def test_a_lost_live_edit_is_recovered_by_its_change_number(lobby, alice, bob):
    await database_sync_to_async(post)(lobby, alice, "original")
    sock, hello = await open_socket(bob)
    assert hello == {"type": "sync.done", "seq": 1, "change": C + 1}

    def edit_without_publishing():  # as if the live layer dropped the edit's event
        with transaction.atomic():
            Room.objects.filter(pk=lobby.pk).update(last_change=F("last_change") + 1)
            Message.objects.filter(seq=1).update(
                body="silently edited", change=C + 2, edited_at=timezone.now()
            )
        post(lobby, alice, "next")  # change C + 3: the socket sees it after C + 1: catches up

    await database_sync_to_async(edit_without_publishing)()
    frames = [await sock.recv() for _ in range(3)]
    assert [(f["type"], f.get("replay"), f.get("change")) for f in frames] == [
        ("message.new", True, None),  # filled from the database: replay frames
        ("message.edited", True, C + 2),
        ("sync.done", None, C + 3),
    ]
    assert frames[1]["message"]["body"] == "silently edited"
    await database_sync_to_async(post)(lobby, alice, "after")
    assert (await sock.recv())["change"] == C + 4  # live again, nothing repeated
    await sock.disconnect()


@pytest.mark.asyncio
@db
async def test_deleting_in_the_admin_is_pushed(lobby, alice, bob):
    message = await database_sync_to_async(post)(lobby, bob, "spam")
    sock, _ = await open_socket(alice)

    def admin_delete():
        admin = get_user_model().objects.create_superuser("root", password="pw-root")
        client = Client()
        client.force_login(admin)
        url = f"/admin/chat/message/{message.pk}/delete/"
        return client.post(url, {"post": "yes"}).status_code

    assert await database_sync_to_async(admin_delete)() == 302
    frame = await sock.recv()
    assert (frame["type"], frame["message"]["seq"]) == ("message.deleted", 1)
    assert await database_sync_to_async(Message.objects.filter(seq=1).exists)()
    await sock.disconnect()


# --- REST ---------------------------------------------------------------------------------------
@db
def test_rest_edit_and_delete(lobby, alice, bob):
    message = post(lobby, alice, "via rest")
    api = {}
    for user in (alice, bob):
        api[user.username] = APIClient()
        api[user.username].credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(user=user)[1]}")
    url = f"/api/rooms/lobby/messages/{message.seq}/"

    refused = api["bob"].patch(url, {"body": "hijack"}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    edited = api["alice"].patch(url, {"body": "edited"}, format="json")
    assert edited.status_code == 200 and edited.json()["body"] == "edited"
    assert api["bob"].delete(url).status_code == 403
    deleted = api["alice"].delete(url)
    assert deleted.status_code == 200 and deleted.json()["deleted_at"]
    again = api["alice"].patch(url, {"body": "undo"}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "message_deleted")
    missing = api["alice"].delete("/api/rooms/lobby/messages/99/")
    assert missing.status_code == 404
