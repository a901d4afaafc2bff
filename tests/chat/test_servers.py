"""The WebSocket API behaves the same on both ASGI servers (config.servers): daphne, the
default, and uvicorn, the option. Real server processes, real clients, counted delivery."""

from __future__ import annotations

import json

import pytest
import pytest_asyncio
import websockets
from channels.db import database_sync_to_async
from django.db import connections

from accounts.tokens import create_token
from chat import protocol
from tests.support.procs import RemoteSocket
from tests.support.ws import session_cookie

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]

SERVERS = ["daphne", "uvicorn"]


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_thread_connections():
    yield
    await database_sync_to_async(connections.close_all)()


async def close_code(url: str, cookie: str | None) -> int | None:
    """Open a socket and read until the server closes it; the close code."""
    async with websockets.connect(
        url, additional_headers={"Cookie": cookie} if cookie else {}
    ) as ws:
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("server", SERVERS)
async def test_refusals_carry_their_close_codes(processes, secret_room, mallory, cookies, server):
    srv = processes.daphne(server=server)
    outsider = await database_sync_to_async(session_cookie)(mallory)
    with processes.explain():
        assert await close_code(srv.ws_url("lobby"), None) == 4401
        assert await close_code(srv.ws_url("secret"), outsider) == 4404
        assert await close_code(srv.ws_url("nowhere"), cookies["bob"]) == 4404
        url = srv.ws_url("lobby", "after_seq=-3")
        assert await close_code(url, cookies["bob"]) == protocol.CLOSE_BAD_REQUEST


@pytest.mark.parametrize("server", SERVERS)
async def test_bad_frames_get_an_error_and_the_socket_stays_up(processes, cookies, server):
    srv = processes.daphne(server=server)
    with processes.explain():
        sock, hello = await RemoteSocket.open(srv.ws_url("lobby"), cookies["bob"])
        assert hello["type"] == "sync.done"
        for frame, code in (
            ("not json", "bad_json"),
            (b"\x00\x01", "binary_not_supported"),
            (json.dumps({"type": "message.send", "body": "x" * 70_000}), "frame_too_large"),
            (json.dumps({"type": "message.send", "body": ""}), "body_required"),
        ):
            await sock.ws.send(frame)
            answer = await sock.recv()
            assert answer["type"] == "error" and answer["code"] == code, answer
        await sock.round_trip()
        assert sock.received == []
        await sock.close()


@pytest.mark.parametrize("server", SERVERS)
async def test_a_program_connects_with_a_token_subprotocol(processes, alice, lobby, server):
    srv = processes.daphne(server=server)
    _, raw = await database_sync_to_async(create_token)(user=alice, name="bot")
    with processes.explain():
        sock, hello = await RemoteSocket.open(
            srv.ws_url("lobby"), None, subprotocols=["parley", f"bearer.{raw}"]
        )
        assert hello == {"type": "sync.done", "seq": 0, "change": 0}
        assert sock.ws.subprotocol == "parley"  # the token is never echoed
        message = await sock.post("from a program")
        assert message["seq"] == 1 and message["author"] == "alice"
        await sock.close()


@pytest.mark.parametrize("pair", [("daphne", "uvicorn"), ("uvicorn", "uvicorn")])
async def test_two_processes_deliver_every_message_once_in_order(processes, cookies, pair):
    """Posts alternate between the two processes; both clients see 1..40, once, in order."""
    a = processes.daphne(server=pair[0], name=f"{pair[0]}-a")
    b = processes.daphne(server=pair[1], name=f"{pair[1]}-b")
    with processes.explain():
        on_a, _ = await RemoteSocket.open(a.ws_url("lobby"), cookies["alice"])
        on_b, _ = await RemoteSocket.open(b.ws_url("lobby"), cookies["bob"])
        sent = []
        for seq in range(1, 41):
            sender = on_a if seq % 2 else on_b
            message = await sender.post(f"m{seq}")
            assert message["seq"] == seq
            sent.append(f"m{seq}")
        for sock in (on_a, on_b):
            await sock.wait_seq(40)
            await sock.round_trip()
            assert sock.seqs == list(range(1, 41))
            assert [m["body"] for m in sock.received] == sent
            await sock.close()


@pytest.mark.parametrize("server", SERVERS)
async def test_frames_made_once_reach_compressed_and_plain_sockets_alike(
    processes, cookies, server
):
    """Live messages are framed once and written to each socket directly, except where the
    connection negotiated compression (uvicorn accepts permessage-deflate; daphne declines
    it): those go through the server's own send. Both kinds get every message once, in order,
    byte for byte, including bodies that need a 16-bit frame length."""
    srv = processes.daphne(server=server)
    bodies = [f"m{i} " + ("é" * 3000 if i % 5 == 0 else "x" * (i * 7)) for i in range(1, 31)]
    with processes.explain():
        plain, _ = await RemoteSocket.open(srv.ws_url("lobby"), cookies["bob"], compression=None)
        packed, _ = await RemoteSocket.open(srv.ws_url("lobby"), cookies["bob"])
        poster, _ = await RemoteSocket.open(srv.ws_url("lobby"), cookies["alice"])
        assert not plain.ws.protocol.extensions
        assert bool(packed.ws.protocol.extensions) == (server == "uvicorn")
        for body in bodies:
            await poster.post(body)
        for sock in (plain, packed, poster):
            await sock.wait_seq(len(bodies))
            await sock.round_trip()
            assert sock.seqs == list(range(1, len(bodies) + 1))
            assert [m["body"] for m in sock.received] == bodies
            await sock.close()
