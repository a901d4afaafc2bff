"""Ephemeral signals: who is online, who is typing (opt-in with ?presence=1), and the per-user
socket /ws/me/ (activity in all of a user's rooms, new mentions)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from broker import groups, registry
from broker.worker import Worker
from chat import actions
from config.asgi import application
from infra.redis_client import get_redis
from tests.support.ws import ORIGIN, Socket, open_socket, session_cookie

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def next_of(sock: Socket, kind: str) -> dict:
    return await sock.next(lambda f: f["type"] == kind)


async def test_presence_lists_who_is_online_as_sockets_come_and_go(lobby, alice, bob):
    a, _ = await open_socket(alice, query="presence=1")
    assert (await next_of(a, "presence"))["online"] == ["alice"]

    b, _ = await open_socket(bob, query="presence=1")
    assert (await next_of(a, "presence"))["online"] == ["alice", "bob"]
    assert (await next_of(b, "presence"))["online"] == ["alice", "bob"]

    await b.disconnect()
    assert (await next_of(a, "presence"))["online"] == ["alice"]
    await a.disconnect()


async def test_sockets_that_did_not_opt_in_get_no_signals(lobby, alice, bob):
    quiet, _ = await open_socket(alice)
    loud, _ = await open_socket(bob, query="presence=1")
    await loud.send({"type": "typing"})
    await database_sync_to_async(actions.post_message)(author=bob, room=lobby, body="x")
    assert (await quiet.recv())["type"] == "message.new"  # nothing came before it
    await quiet.disconnect()
    await loud.disconnect()


async def test_typing_reaches_the_others_once_per_throttle_window(lobby, alice, bob):
    a, _ = await open_socket(alice, query="presence=1")
    b, _ = await open_socket(bob, query="presence=1")
    for _ in range(5):
        await a.send({"type": "typing"})
    assert await next_of(b, "typing") == {"type": "typing", "user": "alice"}
    # The other four were throttled, and alice is never told about her own typing.
    await database_sync_to_async(actions.post_message)(author=bob, room=lobby, body="marker")
    frames = []
    while not frames or frames[-1]["type"] != "message.new":
        frames.append(await b.recv())
    assert [f["type"] for f in frames if f["type"] == "typing"] == []
    own = []
    while not own or own[-1]["type"] != "message.new":
        own.append(await a.recv())
    assert [f for f in own if f["type"] == "typing"] == []
    await a.disconnect()
    await b.disconnect()


async def test_presence_entries_expire_and_do_not_leak_between_rooms(lobby, secret_room, bob):
    room_sock, _ = await open_socket(bob, query="presence=1")
    other, _ = await open_socket(bob, "secret", query="presence=1")
    assert (await next_of(other, "presence"))["online"] == ["bob"]
    members = get_redis().zrange(f"parley:online:{lobby.pk}", 0, -1, withscores=True)
    assert len(members) == 1 and members[0][1] > 0  # an expiring entry
    await room_sock.disconnect()
    await other.disconnect()


# --- /ws/me/ -----------------------------------------------------------------------------------
async def open_me(user) -> tuple[WebsocketCommunicator, dict]:
    cookie = await database_sync_to_async(session_cookie)(user)
    comm = WebsocketCommunicator(
        application, "/ws/me/", headers=[(b"origin", ORIGIN), (b"cookie", cookie.encode())]
    )
    connected, _ = await comm.connect()
    assert connected
    return comm, await comm.receive_json_from()


async def test_me_socket_reports_activity_in_my_rooms_only(lobby, secret_room, alice, mallory):
    me, ready = await open_me(mallory)  # mallory belongs to no room yet
    assert ready == {"type": "ready", "rooms": 0}
    await database_sync_to_async(actions.join_room)(user=mallory, room=lobby)
    await me.disconnect()

    me, ready = await open_me(mallory)
    assert ready == {"type": "ready", "rooms": 1}
    await database_sync_to_async(actions.post_message)(author=alice, room=secret_room, body="no")
    await database_sync_to_async(actions.post_message)(author=alice, room=lobby, body="yes")
    assert await me.receive_json_from() == {"type": "room.activity", "room": "lobby", "seq": 1}
    await me.disconnect()


async def test_me_socket_pushes_new_mentions(lobby, alice, bob):
    sub = registry.get("mentions")
    await database_sync_to_async(groups.ensure_groups)(get_redis(), [sub])
    me, _ = await open_me(bob)
    await database_sync_to_async(actions.post_message)(author=alice, room=lobby, body="hi @bob")
    assert (await me.receive_json_from())["type"] == "room.activity"

    worker = Worker(sub, stop=threading.Event())
    await database_sync_to_async(worker.step)()

    frame = await me.receive_json_from()
    assert frame["type"] == "mention.new" and frame["message"]["body"] == "hi @bob"
    await me.disconnect()


async def test_me_socket_needs_a_login():
    comm = WebsocketCommunicator(application, "/ws/me/", headers=[(b"origin", ORIGIN)])
    await comm.connect()
    assert (await comm.receive_output())["code"] == 4401


async def test_a_burst_of_presence_updates_waits_for_connections_instead_of_failing(lobby):
    """1,000 sockets connecting at once used to exhaust redis-py's pool ("Too many
    connections") and lose presence updates; the bounded blocking pool queues them."""
    from chat import online

    await asyncio.gather(*(online.enter(lobby.pk, f"user{i}", f"s{i}") for i in range(300)))
    assert get_redis().zcard(f"parley:online:{lobby.pk}") == 300


async def test_the_process_refresher_keeps_every_open_socket_online_and_drops_closed_ones(
    lobby, bob
):
    """One refresher per process rewrites the expiry of each open socket's entry."""
    from chat import online

    first, _ = await open_socket(bob)
    second, _ = await open_socket(bob)
    key = f"parley:online:{lobby.pk}"
    get_redis().zadd(key, dict.fromkeys(get_redis().zrange(key, 0, -1), 1))  # about to expire
    await second.disconnect()
    await online.refresher().refresh()
    entries = get_redis().zrange(key, 0, -1, withscores=True)
    assert len(entries) == 1 and entries[0][1] > 1  # the open socket's entry, pushed forward
    await first.disconnect()
    assert online.refresher().members == {}
