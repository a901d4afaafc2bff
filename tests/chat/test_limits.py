"""Per-socket frame rate and per-user socket cap (chat.limits), through the real router, session
auth, Redis and database, on room sockets and /ws/me/."""

from __future__ import annotations

import contextlib
import time
from types import SimpleNamespace

import pytest
import websockets
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

from chat import limits, online
from infra.redis_client import get_redis
from tests.support.procs import RemoteSocket, async_wait_until
from tests.support.ws import Socket, open_path, open_socket, session_cookie

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("disconnect_leftover_sockets"),
]


@pytest.fixture
def frame_limit(monkeypatch):
    """Five frames per 60 s per socket; closed after three more."""
    monkeypatch.setitem(settings.PARLEY, "RATE_LIMIT_FRAMES", 5)
    monkeypatch.setitem(settings.PARLEY, "RATE_LIMIT_WINDOW_SECONDS", 60)
    monkeypatch.setitem(settings.PARLEY, "FLOOD_CLOSE_AFTER_ERRORS", 3)


async def _open_me(user) -> tuple[Socket, dict | int | None]:
    return await open_path("/ws/me/", user)


# --- frames per socket ---------------------------------------------------------------------------
async def test_every_kind_of_frame_counts_and_a_flood_is_closed(lobby, bob, frame_limit):
    sock, first = await open_socket(bob)
    assert first["type"] == "sync.done"
    # Five frames of every kind: a post, typing, an invalid frame, a sync, a ping.
    assert (await sock.post("hello"))["type"] == "message.ack"
    await sock.send({"type": "typing"})
    await sock.send("not json")
    assert (await sock.next(lambda f: f["type"] == "error"))["code"] == "bad_json"
    await sock.send({"type": "sync", "after_seq": 0})
    await sock.next(lambda f: f["type"] == "sync.done")
    await sock.send({"type": "ping"})
    await sock.next(lambda f: f["type"] == "pong")
    # The sixth, whatever it is, is refused with the time to wait, and nothing is done.
    await sock.send({"type": "ping"})
    refused = await sock.next()
    assert refused["type"] == "error" and refused["code"] == "rate_limited"
    assert 1 <= refused["retry_after"] <= 60
    await sock.send({"type": "message.send", "body": "over", "client_id": None})
    assert (await sock.next())["code"] == "rate_limited"
    await sock.send({"type": "ping"})
    assert (await sock.next())["code"] == "rate_limited"
    assert await sock.close_code() == 4429
    assert await database_sync_to_async(lobby.messages.count)() == 1


async def test_frame_rate_is_per_socket(lobby, bob, frame_limit):
    sock, _ = await open_socket(bob)
    other, _ = await open_socket(bob)
    for _ in range(5):
        await sock.send({"type": "ping"})
        await sock.next(lambda f: f["type"] == "pong")
    await sock.send({"type": "ping"})
    assert (await sock.next())["code"] == "rate_limited"
    # Bob's other socket has a budget of its own.
    await other.send({"type": "ping"})
    assert (await other.next())["type"] == "pong"
    await sock.disconnect()
    await other.disconnect()


async def test_the_window_renews(frame_limit, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(limits, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    budget = limits.FrameRate()
    assert [budget.frame_retry_after() for _ in range(5)] == [None] * 5
    clock[0] += 20.5
    assert budget.frame_retry_after() == 40  # 39.5 s left, rounded up
    assert not budget.frame_flood()
    clock[0] += 39.6
    assert budget.frame_retry_after() is None  # a new window


async def test_user_socket_frames_are_limited_too(alice, frame_limit):
    sock, ready = await _open_me(alice)
    assert ready["type"] == "ready"
    # /ws/me/ takes no client frames (AsyncAPI): sent as raw text, past the contract check.
    for _ in range(5):
        await sock.send('{"type": "ping"}')
        assert (await sock.next())["code"] == "unknown_type"
    for _ in range(3):
        await sock.send('{"type": "ping"}')
        refused = await sock.next()
        assert refused["code"] == "rate_limited" and refused["retry_after"] >= 1
    assert await sock.close_code() == 4429


# --- sockets per user ----------------------------------------------------------------------------
async def test_sockets_per_user_are_capped_and_given_back(lobby, bob, alice, monkeypatch):
    monkeypatch.setitem(settings.PARLEY, "MAX_SOCKETS_PER_USER", 3)
    first, _ = await open_socket(bob)
    second, _ = await open_socket(bob)
    me, ready = await _open_me(bob)
    assert ready["type"] == "ready"
    over, code = await open_socket(bob)
    assert code == limits.CLOSE_TOO_MANY_SOCKETS
    over_me, code = await _open_me(bob)
    assert code == limits.CLOSE_TOO_MANY_SOCKETS
    # Other users are not affected.
    theirs, frame = await open_socket(alice)
    assert frame["type"] == "sync.done"
    # A closed socket gives its place back.
    await second.disconnect()  # returns once the consumer has ended
    assert get_redis().zcard(f"parley:sockets:{bob.pk}") == 2
    again, frame = await open_socket(bob)
    assert frame["type"] == "sync.done"
    for sock in (first, me, again, theirs):
        await sock.disconnect()
    assert get_redis().zcard(f"parley:sockets:{bob.pk}") == 0


async def test_places_of_a_dead_process_expire_and_live_ones_are_refreshed(lobby, bob, monkeypatch):
    monkeypatch.setitem(settings.PARLEY, "MAX_SOCKETS_PER_USER", 2)
    key = f"parley:sockets:{bob.pk}"
    # Two places left by a process that was killed: expired a second ago.
    get_redis().zadd(key, {"dead-1": time.time() - 1, "dead-2": time.time() - 1})
    sock, frame = await open_socket(bob)
    assert frame["type"] == "sync.done"
    assert get_redis().zcard(key) == 1
    # The process' refresher pushes its own sockets' expiry forward.
    (slot,) = get_redis().zrange(key, 0, -1)
    get_redis().zadd(key, {slot: time.time() + 1})
    await online.refresher().refresh()
    assert get_redis().zscore(key, slot) > time.time() + online.TTL_SECONDS - 5
    await sock.disconnect()


# --- on real server processes -------------------------------------------------------------------
async def _refusal(url: str, cookie: str) -> int | None:
    """Open a socket that the server refuses; its close code."""
    async with websockets.connect(url, additional_headers={"Cookie": cookie}) as conn:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await conn.recv()
        return conn.close_code


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_the_cap_holds_across_processes_and_both_servers_limit_frames(processes, lobby, bob):
    limited = {"PARLEY_MAX_SOCKETS_PER_USER": "2", "PARLEY_RATE_LIMIT_FRAMES": "5"}
    on_daphne = processes.daphne(server="daphne", name="daphne-a", **limited)
    on_uvicorn = processes.daphne(server="uvicorn", name="uvicorn-b", **limited)
    cookie = await database_sync_to_async(session_cookie)(bob)
    try:
        with processes.explain():
            a, hello = await RemoteSocket.open(on_daphne.ws_url("lobby"), cookie)
            b, hello_b = await RemoteSocket.open(on_uvicorn.ws_url("lobby"), cookie)
            assert hello["type"] == hello_b["type"] == "sync.done"
            for srv in (on_daphne, on_uvicorn):  # bob holds two places, one in each process
                assert await _refusal(srv.ws_url("lobby"), cookie) == limits.CLOSE_TOO_MANY_SOCKETS
            for sock in (a, b):
                for _ in range(5):
                    await sock.round_trip()  # a ping, answered
                await sock.send({"type": "ping"})
                refused = await sock.recv()
                assert refused["code"] == "rate_limited" and refused["retry_after"] >= 1
            await a.close()  # its place is given back, and the other process sees it

            async def one_place_held() -> bool:
                return get_redis().zcard(f"parley:sockets:{bob.pk}") == 1

            await async_wait_until(one_place_held, what="the place given back")
            again, hello = await RemoteSocket.open(on_uvicorn.ws_url("lobby"), cookie)
            assert hello["type"] == "sync.done"
            await again.close()
            await b.close()
    finally:
        await database_sync_to_async(connections.close_all)()
