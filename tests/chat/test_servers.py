"""The WebSocket API behaves the same on both ASGI servers (realtime.servers): daphne, the
default, and uvicorn, the option. Real server processes, real clients, counted delivery; and
each server's adapter (realtime/sockets/) takes the fast path, or declines, as it should."""

from __future__ import annotations

import json
import urllib.request

import pytest
import pytest_asyncio
import websockets
from channels.db import database_sync_to_async
from django.db import connections
from prometheus_client.parser import text_string_to_metric_families

from accounts.tokens import create_token
from chat import protocol
from tests.support.procs import RemoteSocket, Server
from tests.support.rooms import C
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
        assert hello == {"type": "sync.done", "seq": 0, "change": C}
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


# --- the servers' adapters (realtime/sockets/) at the pinned versions -----------------------------
# The fast path (frames written straight to the connection) is really taken on both servers, and
# an adapter that misses a private attribute declines with a log line while every frame still
# reaches the clients through the server's own send.
DECLINED = "adapter declined"

# Runs a server module as ``python -m`` would, after making each adapter ask for one attribute
# that the server's connection lacks: what a later release renaming a private attribute is to
# the adapter's check.
LAUNCHER = """
import os, runpy, sys
sys.path.insert(0, os.getcwd())
from realtime.sockets import daphne, uvicorn
for adapter in (daphne.DaphneConnection, uvicorn.UvicornConnection):
    adapter.needs = (*adapter.needs, "transport.renamed_in_a_later_release")
runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
"""


def launched(processes, server: str, tmp_path, code: str) -> Server:
    """A server started through ``code`` (a launcher that ends by running the server module)."""
    launcher = tmp_path / "launch.py"
    launcher.write_text(code)
    srv = Server(processes.log_dir, server=server)
    python, dash_m, module, *rest = srv.args
    assert dash_m == "-m"
    srv.args = [python, str(launcher), module, *rest]
    return processes.start(srv)


def frame_counts(port: int) -> tuple[float, float]:
    """(frames sent, of which through an adapter) as the server process reports them."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {
        s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
    }
    return values.get("parley_frames_sent_total", 0), values.get("parley_frames_direct_total", 0)


async def exchange(srv: Server, cookies: dict) -> None:
    """Two sockets; alice posts; both receive the message, then a pong (ping frames are
    answered by the socket's own send, the message by the fan-out)."""
    # No compression offered: frames made once are what is under test (a compressed socket
    # is written through the adapter too, but framed per socket).
    alice, _ = await RemoteSocket.open(srv.ws_url("lobby"), cookies["alice"], compression=None)
    bob, _ = await RemoteSocket.open(srv.ws_url("lobby"), cookies["bob"], compression=None)
    message = await alice.post("the fast path")
    for sock in (alice, bob):
        await sock.wait_seq(message["seq"])
        await sock.round_trip()
        assert [m["body"] for m in sock.received] == ["the fast path"]
    # A second post: its fan-out flushes the frame counts of everything before it.
    second = await alice.post("counted")
    for sock in (alice, bob):
        await sock.wait_seq(second["seq"])
        await sock.close()


@pytest.mark.parametrize("server", SERVERS)
async def test_the_fast_path_is_taken(processes, cookies, server):
    srv = processes.daphne(server=server)
    with processes.explain():
        await exchange(srv, cookies)
        sent, direct = await database_sync_to_async(frame_counts)(srv.port)
        # sync.done, acks, messages, pongs (counted per fan-out: not all of them yet)
        assert sent >= 5
        assert direct == sent
        assert DECLINED not in srv.output()


@pytest.mark.parametrize("server", SERVERS)
async def test_an_adapter_missing_an_attribute_declines_and_frames_still_arrive(
    processes, cookies, server, tmp_path
):
    srv = launched(processes, server, tmp_path, LAUNCHER)
    with processes.explain():
        await exchange(srv, cookies)
        sent, direct = await database_sync_to_async(frame_counts)(srv.port)
        assert sent >= 5
        assert direct == 0  # every frame went through the server's send
        output = srv.output()
        assert output.count(DECLINED) == 1, output  # one log line, not one per socket
        assert "transport.renamed_in_a_later_release" in output


# --- each connection's queue and write event (realtime/inbox.py) ---------------------------------
# Both servers hand the application a realtime.inbox.Inbox, and uvicorn waits on a Flag, in place
# of asyncio's Queue and Event (3.3 and 1 KiB per idle socket); a release that changes what they
# replace keeps the server's own, with one log line, and every frame still arrives.
COUNTING_LAUNCHER = """
import os, runpy, sys
sys.path.insert(0, os.getcwd())
from realtime import inbox
for cls in (inbox.Inbox, inbox.Flag):
    def init(self, *args, _init=cls.__init__, _name=cls.__name__):
        if not getattr(inbox, "seen_" + _name, False):
            setattr(inbox, "seen_" + _name, True)
            print("made a realtime.inbox." + _name, flush=True)
        _init(self, *args)
    cls.__init__ = init
{changed}
runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
"""
# What a later release renaming an attribute or a type would be to the checks.
CHANGED = """
from realtime import daphne_lean, uvicorn_ws
daphne_lean.LeanServer.needs = (*daphne_lean.LeanServer.needs, "renamed_in_a_later_release")
uvicorn_ws.LeanWebSocketsProtocol.expects["queue"] = dict
"""
KEPT_OWN = "changed: its connections keep asyncio queues", "changed: it keeps asyncio's queue"


@pytest.mark.parametrize("server", SERVERS)
async def test_connections_hold_the_lean_queue(processes, cookies, server, tmp_path):
    srv = launched(processes, server, tmp_path, COUNTING_LAUNCHER.replace("{changed}", ""))
    with processes.explain():
        await exchange(srv, cookies)
        output = srv.output()
        assert "made a realtime.inbox.Inbox" in output, output
        assert ("made a realtime.inbox.Flag" in output) == (server == "uvicorn"), output
        assert not any(line in output for line in KEPT_OWN), output


@pytest.mark.parametrize("server", SERVERS)
async def test_a_changed_server_keeps_its_own_queue_and_frames_still_arrive(
    processes, cookies, server, tmp_path
):
    srv = launched(processes, server, tmp_path, COUNTING_LAUNCHER.replace("{changed}", CHANGED))
    with processes.explain():
        await exchange(srv, cookies)
        output = srv.output()
        assert "made a realtime.inbox" not in output, output
        assert sum(output.count(line) for line in KEPT_OWN) == 1, output  # once, not per socket
