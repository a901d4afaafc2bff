"""The servers' adapters (config/sockets/) on real server processes at the pinned versions: the
fast path (frames written straight to the connection) is really taken on daphne and uvicorn,
and an adapter that misses a private attribute declines with a log line while every frame
still reaches the clients through the server's own send."""

from __future__ import annotations

import urllib.request

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.db import connections
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import RemoteSocket, Server

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]

SERVERS = ["daphne", "uvicorn"]
DECLINED = "adapter declined"

# Runs a server module as ``python -m`` would, after making each adapter ask for one attribute
# that the server's connection lacks: what a later release renaming a private attribute is to
# the adapter's check.
LAUNCHER = """
import os, runpy, sys
sys.path.insert(0, os.getcwd())
from config.sockets import daphne, uvicorn
for adapter in (daphne.DaphneConnection, uvicorn.UvicornConnection):
    adapter.needs = (*adapter.needs, "transport.renamed_in_a_later_release")
runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
"""


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_thread_connections():
    yield
    await database_sync_to_async(connections.close_all)()


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
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    srv = Server(processes.log_dir, server=server)
    python, dash_m, module, *rest = srv.args
    assert dash_m == "-m"
    srv.args = [python, str(launcher), module, *rest]
    processes.start(srv)
    with processes.explain():
        await exchange(srv, cookies)
        sent, direct = await database_sync_to_async(frame_counts)(srv.port)
        assert sent >= 5
        assert direct == 0  # every frame went through the server's send
        output = srv.output()
        assert output.count(DECLINED) == 1, output  # one log line, not one per socket
        assert "transport.renamed_in_a_later_release" in output
