"""Redis and server-process failures with real processes: no message is lost or duplicated.

Each Redis test runs daphne and the relay on a private Redis of its own (never the suite's) and
stops, restarts or kills it while real WebSocket clients stay connected.
"""

from __future__ import annotations

import json

import pytest
import pytest_asyncio
import redis
from channels.db import database_sync_to_async
from django.db import connections

from chat import actions
from chat.models import OutboxEvent
from contract import events
from infra.embedded_redis import RedisServer
from tests.support.events import check_event
from tests.support.procs import RemoteSocket, async_wait_until
from tests.support.rooms import C

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_thread_connections():
    """The ORM calls below run in asgiref's worker thread, whose connection would otherwise
    outlive the test (CONN_MAX_AGE) and keep PostgreSQL from dropping the test database."""
    yield
    await database_sync_to_async(connections.close_all)()


def assert_delivered(sockets: dict[str, RemoteSocket], sent: list[str]) -> None:
    """Every socket got exactly the messages sent: all of them, once each, in seq order."""
    expected = list(range(1, len(sent) + 1))
    for name, sock in sockets.items():
        assert sock.seqs == expected, f"{name} got seqs {sock.seqs}, expected {expected}"
        assert [m["body"] for m in sock.received] == sent, f"{name} got other bodies"


@database_sync_to_async
def pending_outbox() -> int:
    return OutboxEvent.objects.filter(topic="chat.message", published_at__isnull=True).count()


async def no_pending_outbox() -> bool:
    return await pending_outbox() == 0


def stream_seqs(server: RedisServer) -> list[int]:
    """Seqs of the events on the ``chat.message`` stream of ``server``, oldest first."""
    client = redis.Redis.from_url(server.url)
    try:
        entries = client.xrange(events.stream_key(events.TOPIC_MESSAGE))
    finally:
        client.close()
    out = []
    for _, fields in entries:
        event = json.loads(fields[b"event"])
        check_event(event)
        out.append(event["seq"])
    return out


async def connect_both(daphne, cookies) -> dict[str, RemoteSocket]:
    sockets = {}
    for name in ("alice", "bob"):
        sock, hello = await RemoteSocket.open(daphne.ws_url("lobby"), cookies[name])
        assert hello == {"type": "sync.done", "seq": 0, "change": C}
        sockets[name] = sock
    return sockets


async def post_and_wait(sockets: dict[str, RemoteSocket], sent: list[str], body: str) -> None:
    """alice posts ``body``; both sockets receive it."""
    message = await sockets["alice"].post(body)
    sent.append(body)
    assert message["seq"] == len(sent)
    for sock in sockets.values():
        await sock.wait_seq(message["seq"])


async def stack_with_three_messages(processes, private_redis, cookies):
    """daphne and the relay on the private Redis, alice and bob connected, 3 messages seen."""
    daphne = processes.daphne(redis_url=private_redis.url)
    processes.relay(redis_url=private_redis.url)
    sockets = await connect_both(daphne, cookies)
    sent: list[str] = []
    for i in range(3):
        await post_and_wait(sockets, sent, f"before {i}")
    return sockets, sent


async def close_all(sockets: dict[str, RemoteSocket]) -> None:
    for sock in sockets.values():
        await sock.close()


async def test_writes_while_redis_is_down_are_delivered_once_in_order_after_it_returns(
    processes, private_redis, cookies
):
    with processes.explain():
        sockets, sent = await stack_with_three_messages(processes, private_redis, cookies)

        private_redis.stop()
        for i in range(5):
            # Acked although Redis is down: the message and its outbox row are in the database.
            message = await sockets["alice"].post(f"during {i}")
            sent.append(f"during {i}")
            assert message["seq"] == len(sent)
        assert await pending_outbox() == 5
        private_redis.start()

        # Nobody posts until the pending rows are published: only the relay can do it.
        await async_wait_until(no_pending_outbox, what="the relay published every outbox row")
        for sock in sockets.values():
            await sock.wait_seq(len(sent), timeout=30)
        await post_and_wait(sockets, sent, "after")
        for sock in sockets.values():
            await sock.round_trip()
        assert_delivered(sockets, sent)
        await async_wait_until(no_pending_outbox, what="every outbox row published")
        # The restarted Redis started empty. The relay noticed, republished first what no
        # subscriber had processed (1-3: none runs here), then published the pending rows.
        assert stream_seqs(private_redis) == list(range(1, len(sent) + 1))
        await close_all(sockets)


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_redis_restart_with_clients_connected_loses_no_later_message(
    processes, private_redis, cookies, outage
):
    with processes.explain():
        sockets, sent = await stack_with_three_messages(processes, private_redis, cookies)

        # Restart with empty memory: no subscription, no stream, no publish guard survives.
        if outage == "kill":
            private_redis.kill()
        else:
            private_redis.stop()
        private_redis.start()

        for i in range(5):
            message = await sockets["alice"].post(f"after {i}", timeout=15)
            sent.append(f"after {i}")
            assert message["seq"] == len(sent)
        for sock in sockets.values():
            await sock.wait_seq(len(sent), timeout=30)
            await sock.round_trip()
        assert_delivered(sockets, sent)
        await async_wait_until(no_pending_outbox, what="every outbox row published")

        # What was published since the restart, in order. The relay republished what no
        # subscriber had processed (none runs here): 1-3, and, if it noticed the loss only after
        # some posts, copies of those too (subscribers' ledgers drop copies).
        async def republished() -> bool:
            return set(stream_seqs(private_redis)) == set(range(1, len(sent) + 1))

        await async_wait_until(republished, what="the relay republished what Redis lost")
        first_seen = list(dict.fromkeys(stream_seqs(private_redis)))
        assert [s for s in first_seen if s > 3] == list(range(4, len(sent) + 1))
        await close_all(sockets)


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_server_killed_client_resumes_on_new_process_exactly_once(
    processes, lobby, alice, cookies, server
):
    # The test process posts through the ORM and publishes to the suite's Redis (its
    # settings.REDIS_URL), so both daphne processes listen there too.
    cookie = cookies["bob"]
    post = database_sync_to_async(actions.post_message)
    first = processes.daphne(name=f"{server}-1", server=server)
    with processes.explain():
        sock, hello = await RemoteSocket.open(first.ws_url("lobby"), cookie)
        assert hello == {"type": "sync.done", "seq": 0, "change": C}
        sent: list[str] = []
        for i in range(3):
            sent.append(f"before {i}")
            await post(author=alice, room=lobby, body=sent[-1])
        await sock.wait_seq(3)

        first.stop(sig_kill=True)
        assert first.proc.returncode == -9
        await sock.wait_closed()
        for i in range(4):
            sent.append(f"while down {i}")
            await post(author=alice, room=lobby, body=sent[-1])

        second = processes.daphne(name=f"{server}-2", server=server)
        last_seen = max(sock.seqs)
        resumed, frame = await RemoteSocket.open(
            second.ws_url("lobby", f"after_seq={last_seen}"), cookie
        )
        resumed.received = sock.received + resumed.received  # both connections count
        # The replay comes before sync.done, which names the newest seq.
        while frame["type"] != "sync.done":
            frame = await resumed.recv()
        assert frame["seq"] == len(sent)
        for i in range(3):
            sent.append(f"after {i}")
            await post(author=alice, room=lobby, body=sent[-1])
        await resumed.wait_seq(len(sent))
        await resumed.round_trip()
        assert_delivered({"bob": resumed}, sent)
        await resumed.close()
