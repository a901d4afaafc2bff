"""SIGTERM to a server process (ops/drain.py): /readyz 503 first, then stop accepting, answer
the posts received, close every socket with 1012, exit. Real server processes, both servers."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest
import pytest_asyncio
import websockets
from channels.db import database_sync_to_async
from django.db import connections

from chat.models import Message, OutboxEvent
from contract import events
from realtime import uvicorn_server
from tests.support.procs import RemoteSocket, async_wait_until

SERVERS = ["daphne", "uvicorn"]


def real_servers(test):
    """Marks of the tests that start server processes."""
    for mark in (
        pytest.mark.asyncio,
        pytest.mark.django_db(transaction=True),
        pytest.mark.slow,
        pytest.mark.timeout(90),
        pytest.mark.parametrize("server", SERVERS),
        pytest.mark.usefixtures("_close_worker_thread_connections"),
    ):
        test = mark(test)
    return test


@pytest_asyncio.fixture
async def _close_worker_thread_connections():
    yield
    await database_sync_to_async(connections.close_all)()


def readyz(port: int) -> tuple[int | None, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None, {}


async def close_code(sock: RemoteSocket) -> int | None:
    try:
        while True:
            await sock.recv()
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def test_daphne_builds_the_factories_our_adapter_replaces():
    """realtime/daphne_server.py swaps daphne.server's factory names and closes with autobahn's
    sendCloseFrame; checked in a fresh interpreter (importing daphne installs its reactor)."""
    check = (
        "from daphne import server, ws_protocol, http_protocol\n"
        "assert server.WebSocketFactory is ws_protocol.WebSocketFactory\n"
        "assert server.HTTPFactory is http_protocol.HTTPFactory\n"
        "assert callable(ws_protocol.WebSocketProtocol.sendCloseFrame)\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_uvicorn_main_builds_the_server_our_adapter_replaces():
    """realtime/uvicorn_server.py swaps ``uvicorn.main.Server``: the name must be uvicorn's."""
    assert uvicorn_server.uvicorn_main.Server is uvicorn_server.Server


@real_servers
async def test_sigterm_turns_readyz_503_while_still_serving(processes, cookies, server):
    srv = processes.daphne(server=server, PARLEY_DRAIN_SECONDS="30")
    with processes.explain():
        status, body = await asyncio.to_thread(readyz, srv.port)
        assert body["checks"]["draining"] == {"ok": True}
        sock, _ = await RemoteSocket.open(srv.ws_url("lobby"), cookies["bob"])
        srv.proc.send_signal(signal.SIGTERM)

        async def not_ready() -> bool:
            return (await asyncio.to_thread(readyz, srv.port))[0] == 503

        await async_wait_until(not_ready, what="/readyz 503 after SIGTERM")
        assert (await asyncio.to_thread(readyz, srv.port))[1] == {
            "ready": False,
            "checks": {"draining": {"ok": False}},
        }
        # During the drain delay it still accepts and serves: the open socket and a new one.
        await sock.post("still served")
        late, hello = await RemoteSocket.open(srv.ws_url("lobby"), cookies["alice"])
        assert hello["type"] == "sync.done"
        await late.close()
        await sock.close()


@real_servers
async def test_sigterm_answers_received_posts_then_closes_with_1012(processes, cookies, server):
    """Posts pipelined right before SIGTERM: each one the server stored was acked before the
    1012 close (none acked and lost, none stored unanswered); the sockets' user.disconnected
    rows are written; the process exits and refuses new connections."""
    srv = processes.daphne(server=server, PARLEY_DRAIN_SECONDS="0")
    with processes.explain():
        sock, _ = await RemoteSocket.open(srv.ws_url("lobby"), cookies["bob"])
        other, _ = await RemoteSocket.open(srv.ws_url("lobby"), cookies["alice"])
        client_ids = [str(uuid.uuid4()) for _ in range(60)]
        for i, client_id in enumerate(client_ids):
            await sock.send({"type": "message.send", "body": f"m{i}", "client_id": client_id})
        srv.proc.send_signal(signal.SIGTERM)
        acked: list[str] = []
        try:
            while True:
                frame = await sock.recv()
                if frame["type"] == "message.ack":
                    acked.append(frame["client_id"])
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1012, closed
        assert await close_code(other) == 1012
        assert await asyncio.to_thread(srv.proc.wait, 20) in (0, -signal.SIGTERM)
        stored = await database_sync_to_async(
            lambda: set(Message.objects.values_list("client_id", flat=True))
        )()
        assert {str(c) for c in stored} == set(acked)
        assert acked == client_ids[: len(acked)]  # in order
        # Both sockets' disconnects during the drain had their presence rows written.
        presence = await database_sync_to_async(
            lambda: sorted(
                OutboxEvent.objects.filter(topic=events.TOPIC_PRESENCE).values_list(
                    "type", flat=True
                )
            )
        )()
        assert presence == [events.USER_CONNECTED] * 2 + [events.USER_DISCONNECTED] * 2
        with pytest.raises(OSError):
            await websockets.connect(srv.ws_url("lobby"))
