"""Access taken away reaches open sockets (chat.access): every change that can end a user's
access closes the sockets it concerns, and nothing of the room reaches them after it committed.

In-process sockets through the real router, the real Redis layer and the database. Each test
takes access away and then has alice post 20 messages *without waiting* for the close: the
revoked socket must get none of them (its frames are read until the close), the others all.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from django.utils import timezone

from accounts.tokens import create_token, revoke_token
from chat import actions
from chat.models import Membership, Message, Room
from tests.support import ws
from tests.support.ws import TIMEOUT, Closed, Socket, open_path, open_socket

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

POSTS = 20


@pytest_asyncio.fixture(autouse=True)
async def _close_connections(disconnect_leftover_sockets):
    yield
    await database_sync_to_async(connections.close_all)()


async def token_socket(user, slug: str) -> Socket:
    token, raw = await database_sync_to_async(create_token)(user=user, name="bot")
    sock, hello = await open_path(
        f"/ws/rooms/{slug}/", headers=[(b"authorization", f"Bearer {raw}".encode())]
    )
    assert hello["type"] == "sync.done", hello
    sock.token_id = token.pk
    return sock


async def room_socket(user, slug: str) -> Socket:
    sock, hello = await open_socket(user, slug)
    assert hello["type"] == "sync.done", hello
    return sock


async def messages_until_closed(sock: Socket) -> tuple[list[int], int | None]:
    """Read every frame until the server closes the socket: the seqs of message.new and
    message.edited frames received meanwhile, and the close code."""
    seqs: list[int] = []
    while True:
        try:
            frame = await sock.recv(timeout=TIMEOUT)
        except Closed as closed:
            return seqs, closed.code
        if frame["type"] in ("message.new", "message.edited", "message.deleted"):
            seqs.append(frame["message"]["seq"])


@database_sync_to_async
def post_many(author, room: Room, count: int = POSTS, prefix: str = "after") -> list[int]:
    return [
        actions.post_message(author=author, room=room, body=f"{prefix} {i}").message.seq
        for i in range(count)
    ]


async def assert_revoked(socks: Socket | list[Socket], code: int, alice, room: Room) -> None:
    """alice posts 20 right away; the sockets get none of them and are closed with ``code``."""
    await post_many(alice, room)
    for sock in socks if isinstance(socks, list) else [socks]:
        seqs, closed = await messages_until_closed(sock)
        assert seqs == [], f"a revoked socket was sent messages {seqs}"
        assert closed == code


async def assert_still_receives(sock: Socket, first_seq: int, count: int = POSTS) -> None:
    got = await sock.messages(until_seq=first_seq + count - 1)
    assert [m["seq"] for m in got] == list(range(first_seq, first_seq + count))


# --- rooms: membership ended, room made private or deleted -> 4403 -------------------------------
@pytest.mark.parametrize("how", ["leave_action", "orm_delete", "queryset_delete", "admin_delete"])
async def test_a_member_removed_from_a_private_room_gets_nothing_more(secret_room, alice, bob, how):
    bob_sock = await room_socket(bob, "secret")
    alice_sock = await room_socket(alice, "secret")

    @database_sync_to_async
    def remove() -> None:
        if how == "leave_action":
            assert actions.leave_room(user=bob, room=secret_room)
        elif how == "orm_delete":
            Membership.objects.get(user=bob, room=secret_room).delete()
        elif how == "queryset_delete":
            Membership.objects.filter(room=secret_room, user__username="bob").delete()
        else:
            staff = get_user_model().objects.create_superuser("root", password="pw-root")
            client = Client()
            client.force_login(staff)
            membership = Membership.objects.get(user=bob, room=secret_room)
            url = f"/admin/chat/membership/{membership.pk}/delete/"
            if client.get(url).status_code == 404:  # no Membership admin: via the room's inline
                membership.delete()
            else:
                assert client.post(url, {"post": "yes"}).status_code == 302

    await remove()
    await assert_revoked(bob_sock, 4403, alice, secret_room)
    await assert_still_receives(alice_sock, 1)
    await alice_sock.disconnect()


async def test_a_public_room_made_private_closes_non_members_only(lobby, alice, bob, mallory):
    outsider = await room_socket(mallory, "lobby")
    member = await room_socket(bob, "lobby")

    @database_sync_to_async
    def make_private() -> None:
        lobby.is_private = True
        lobby.save()

    await make_private()
    await assert_revoked(outsider, 4403, alice, lobby)
    await assert_still_receives(member, 1)
    await member.disconnect()


async def test_a_deleted_room_closes_its_sockets(secret_room, alice, bob):
    bob_sock = await room_socket(bob, "secret")
    await database_sync_to_async(Room.objects.filter(pk=secret_room.pk).delete)()
    seqs, code = await messages_until_closed(bob_sock)
    assert (seqs, code) == ([], 4403)


# --- credentials: token revoked, user deactivated or deleted, password changed, logout -> 4401 ----
async def test_a_revoked_token_closes_its_sockets_and_no_other(secret_room, alice, bob):
    by_token = await token_socket(bob, "secret")
    by_session = await room_socket(bob, "secret")
    assert await database_sync_to_async(revoke_token)(token_id=by_token.token_id, user=bob)
    await assert_revoked(by_token, 4401, alice, secret_room)
    await assert_still_receives(by_session, 1)
    await by_session.disconnect()


async def test_a_token_that_expires_closes_its_sockets_when_it_does(secret_room, alice, bob):
    expires = timezone.now() + timedelta(seconds=1)
    _, raw = await database_sync_to_async(create_token)(user=bob, name="short", expires_at=expires)
    sock, hello = await open_path(
        "/ws/rooms/secret/", headers=[(b"authorization", f"Bearer {raw}".encode())]
    )
    assert hello["type"] == "sync.done", hello
    seqs, code = await messages_until_closed(sock)
    assert (seqs, code) == ([], 4401)
    assert timezone.now() >= expires


async def test_a_deleted_token_closes_its_sockets(secret_room, alice, bob):
    by_token = await token_socket(bob, "secret")
    await database_sync_to_async(lambda: bob.api_tokens.get(pk=by_token.token_id).delete())()
    await assert_revoked(by_token, 4401, alice, secret_room)


async def test_a_deactivated_user_is_closed_everywhere(secret_room, lobby, alice, bob):
    sockets = [await room_socket(bob, "secret"), await token_socket(bob, "lobby")]
    me, ready = await open_socket_me(bob)

    @database_sync_to_async
    def deactivate() -> None:
        bob.is_active = False
        bob.save()

    await deactivate()
    await assert_revoked(sockets, 4401, alice, secret_room)
    assert await me.close_code() == 4401


async def test_a_deleted_user_is_closed(secret_room, alice, bob):
    bob_sock = await room_socket(bob, "secret")
    await database_sync_to_async(lambda: get_user_model().objects.get(pk=bob.pk).delete())()
    await assert_revoked(bob_sock, 4401, alice, secret_room)


async def test_a_password_change_closes_session_sockets_not_token_ones(secret_room, alice, bob):
    by_session = await room_socket(bob, "secret")
    by_token = await token_socket(bob, "secret")

    @database_sync_to_async
    def change_password() -> None:
        bob.set_password("a new one")
        bob.save()

    await change_password()
    await assert_revoked(by_session, 4401, alice, secret_room)
    # A token is a credential of its own (revoke it to end it): its socket goes on.
    await assert_still_receives(by_token, 1)
    await by_token.disconnect()


async def test_logging_out_closes_the_sockets_of_that_session(secret_room, alice, bob):
    browser = Client()
    await database_sync_to_async(browser.force_login)(bob)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    this_session, hello = await open_path("/ws/rooms/secret/", headers=[(b"cookie", cookie)])
    assert hello["type"] == "sync.done"
    other_session = await room_socket(bob, "secret")
    await database_sync_to_async(browser.logout)()
    await assert_revoked(this_session, 4401, alice, secret_room)
    await assert_still_receives(other_session, 1)
    await other_session.disconnect()


# --- defence in depth: sync and posts re-check the database ---------------------------------
async def test_a_sync_rechecks_access_even_if_the_event_was_missed(secret_room, alice, bob):
    await post_many(alice, secret_room, 5, "before")
    bob_sock = await room_socket(bob, "secret")

    @database_sync_to_async
    def remove_silently() -> None:  # no signal, no event: as if the process had missed it
        Membership.objects.filter(user=bob, room=secret_room)._raw_delete("default")

    await remove_silently()
    await bob_sock.send({"type": "sync", "after_seq": 0})
    seqs, code = await messages_until_closed(bob_sock)
    assert (seqs, code) == ([], 4403)


async def test_a_post_rechecks_that_the_author_is_active(lobby, alice, bob):
    bob_sock = await room_socket(bob, "lobby")
    await database_sync_to_async(
        get_user_model().objects.filter(pk=bob.pk).update  # no signal, no event
    )(is_active=False)
    answer = await bob_sock.post("still here?")
    assert answer["type"] == "error" and answer["code"] == "not_authenticated", answer
    assert await database_sync_to_async(Message.objects.count)() == 0
    await bob_sock.disconnect()


async def test_a_post_to_a_private_room_rechecks_membership(secret_room, alice, bob):
    bob_sock = await room_socket(bob, "secret")
    await database_sync_to_async(Membership.objects.filter(user=bob, room=secret_room)._raw_delete)(
        "default"
    )
    answer = await bob_sock.post("still here?")
    assert answer["type"] == "error" and answer["code"] == "forbidden", answer
    assert await database_sync_to_async(Message.objects.count)() == 0
    await bob_sock.disconnect()


# --- /ws/me/ -------------------------------------------------------------------------------------
async def open_socket_me(user) -> tuple[Socket, dict]:
    cookie = await database_sync_to_async(ws.session_cookie)(user)
    sock, ready = await open_path("/ws/me/", headers=[(b"cookie", cookie.encode())])
    assert ready["type"] == "ready", ready
    return sock, ready


async def test_me_socket_stops_reporting_a_room_the_user_left(secret_room, lobby, alice, bob):
    me, _ = await open_socket_me(bob)
    await database_sync_to_async(actions.leave_room)(user=bob, room=secret_room)
    await post_many(alice, secret_room, 3, "secret")
    # The sentinel: a lobby message's activity is the next frame; nothing of secret came first.
    await post_many(alice, lobby, 1, "lobby")
    frame = await me.recv()
    assert frame == {"type": "room.activity", "room": "lobby", "seq": 1}
    assert await me.nothing_pending()
    await me.disconnect()
