"""Access taken away closes sockets held by real server processes (daphne and uvicorn): the
change is made in this process (REST or ORM), its access.revoked event crosses Redis, and the
server closes the sockets it concerns. Counted: after the change, alice posts 20 messages at
once; every revoked socket receives none of them, a member who kept access receives all 20."""

from __future__ import annotations

import time

import pytest
import pytest_asyncio
import websockets
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from accounts.tokens import create_token
from chat import actions
from chat.models import Membership, Room
from tests.support.procs import RemoteSocket
from tests.support.ws import session_cookie

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]

POSTS = 20


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_thread_connections():
    yield
    await database_sync_to_async(connections.close_all)()


async def until_closed(sock: RemoteSocket) -> tuple[list[int], int | None, float]:
    """Read until the server closes: seqs of message frames received, close code, and when."""
    seqs: list[int] = []
    try:
        while True:
            frame = await sock.recv(timeout=10)
            if frame["type"].startswith("message."):
                seqs.append(frame["message"]["seq"])
    except websockets.ConnectionClosed as closed:
        return seqs, closed.rcvd.code if closed.rcvd else None, time.monotonic()


@database_sync_to_async
def cast(alice):
    """A private room of alice with five more members, each to lose access another way."""
    room = actions.create_room(creator=alice, slug="secret", title="Secret", is_private=True)
    people = {}
    for name in ("leaver", "holder", "inactive", "rotator", "keeper"):
        user = get_user_model().objects.create_user(name, password=f"pw-{name}")
        Membership.objects.create(user=user, room=room)
        people[name] = user
    return room, people


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_revoked_sockets_get_nothing_more_and_close_with_their_code(processes, alice, server):
    srv = processes.daphne(server=server, PARLEY_RATE_LIMIT_MESSAGES="1000")
    room, people = await cast(alice)
    url = srv.ws_url("secret")
    with processes.explain():
        sockets = {}
        for name in ("leaver", "inactive", "rotator", "keeper"):
            cookie = await database_sync_to_async(session_cookie)(people[name])
            sockets[name], hello = await RemoteSocket.open(url, cookie)
            assert hello["type"] == "sync.done"
        token, raw = await database_sync_to_async(create_token)(user=people["holder"])
        sockets["holder"], hello = await RemoteSocket.open(
            url, None, subprotocols=["parley", f"bearer.{raw}"]
        )
        assert hello["type"] == "sync.done"

        @database_sync_to_async
        def take_access_away() -> None:
            leaver = Client()
            leaver.force_login(people["leaver"])
            assert leaver.post("/api/rooms/secret/leave/").status_code in (200, 204)
            holder = Client()
            holder.force_login(people["holder"])
            assert holder.delete(f"/api/tokens/{token.pk}/").status_code == 204
            inactive = people["inactive"]
            inactive.is_active = False
            inactive.save()
            rotator = people["rotator"]
            rotator.set_password("rotated")
            rotator.save()

        @database_sync_to_async
        def alice_posts() -> None:
            for i in range(POSTS):
                actions.post_message(author=alice, room=Room.objects.get(pk=room.pk), body=f"{i}")

        await take_access_away()
        changed = time.monotonic()
        await alice_posts()
        expected = {"leaver": 4403, "holder": 4401, "inactive": 4401, "rotator": 4401}
        for name, code in expected.items():
            seqs, closed, at = await until_closed(sockets[name])
            assert (seqs, closed) == ([], code), f"{name}: {seqs} then {closed}"
            print(f"{server}: {name} closed {closed} {1000 * (at - changed):.0f} ms after")
        kept = await sockets["keeper"].messages(until_seq=POSTS)
        assert [m["seq"] for m in kept] == list(range(1, POSTS + 1))
        await sockets["keeper"].close()


async def test_a_process_that_missed_the_event_rechecks_when_redis_returns(
    processes, private_redis, alice, secret_room, bob
):
    """Redis restarts empty while bob loses access (no relay: the event is never published);
    the server's layer reconnects, its sockets re-check access and bob's closes."""
    srv = processes.daphne(redis_url=private_redis.url)
    cookie = await database_sync_to_async(session_cookie)(bob)
    with processes.explain():
        bob_sock, hello = await RemoteSocket.open(srv.ws_url("secret"), cookie)
        assert hello["type"] == "sync.done"
        private_redis.stop()
        await database_sync_to_async(
            Membership.objects.filter(user=bob, room=secret_room)._raw_delete
        )("default")
        private_redis.start()
        seqs, code, _ = await until_closed(bob_sock)
        assert (seqs, code) == ([], 4403)
