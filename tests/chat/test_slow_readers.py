"""A client that does not read cannot grow the server's memory, nor hold up the others.

Real server processes (daphne and uvicorn), a real database and Redis. The slow client is a
raw TCP socket with a tiny receive buffer, speaking WebSocket through the websockets library's
sans-I/O client (so the frames are real), that stops reading after its ``sync.done``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.db import connections
from websockets.client import ClientProtocol
from websockets.frames import Close
from websockets.uri import parse_uri

from chat import protocol
from chat.models import Message
from tests.support.procs import RemoteSocket, async_wait_until

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(150),
]

ROOM_MESSAGES = 5_000
SYNCS = 50
LIVE = 20
MiB = 1024 * 1024
GRACE = "3"  # seconds a socket may stay too slow (the default is longer; the test waits on it)
SLOW_LOG_LINE = "does not read"


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_thread_connections():
    yield
    await database_sync_to_async(connections.close_all)()


def seed(room, author, count: int, size: int = 200) -> None:
    """``count`` messages in batches of 500 (the write path's batch form: seqs, outbox, one
    transaction each, published on commit), frames of about ``size`` + 100 bytes."""
    for start in range(0, count, 500):
        Message.create_batch(
            [
                Message(room=room, author=author, body=f"seeded {i} " + "x" * size)
                for i in range(start, min(count, start + 500))
            ]
        )


def rss(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak since the last ``reset_peak``) of ``pid``, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


class SlowClient:
    """A WebSocket client on a raw socket whose receive buffer is a few KiB, so the server's
    writes back up at once; it reads only when told to."""

    def __init__(self, url: str, cookie: str) -> None:
        self.ws = ClientProtocol(parse_uri(url))
        self.request = self.ws.connect()
        self.request.headers["Cookie"] = cookie
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        self.sock.setblocking(False)
        self.port = int(url.split(":")[2].split("/")[0])
        self.frames: list[dict] = []

    async def open(self) -> dict:
        """Connect, shake hands and read the first frame (sync.done)."""
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        self.ws.send_request(self.request)
        await self._flush()
        while not self.frames:
            await self._read_some()
        return self.frames[0]

    async def send(self, frame: dict) -> None:
        self.ws.send_text(json.dumps(frame).encode())
        await self._flush()

    async def read_to_close(self, timeout: float = 30) -> int | None:
        """Read everything until the server's close frame; its code (None: no close frame)."""
        deadline = time.monotonic() + timeout
        while not self.ws.close_rcvd:
            if not await self._read_some(max(0.01, deadline - time.monotonic())):
                break  # the connection ended without a close frame
        return self.ws.close_rcvd.code if self.ws.close_rcvd else None

    async def _read_some(self, timeout: float = 10) -> bool:
        data = await asyncio.wait_for(
            asyncio.get_running_loop().sock_recv(self.sock, 65536), timeout
        )
        if not data:
            self.ws.receive_eof()
            return False
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if not isinstance(event, Close) and getattr(event, "opcode", None) is not None:
                if event.opcode.name == "TEXT":
                    self.frames.append(json.loads(event.data))
        return True

    async def _flush(self) -> None:
        for data in self.ws.data_to_send():
            if data:
                await asyncio.get_running_loop().sock_sendall(self.sock, data)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_a_client_that_never_reads_is_closed_and_costs_the_others_nothing(
    processes, cookies, lobby, alice, server
):
    await database_sync_to_async(seed)(lobby, alice, ROOM_MESSAGES)
    srv = processes.daphne(
        server=server,
        PARLEY_SLOW_CLIENT_GRACE_SECONDS=GRACE,
        PARLEY_RATE_LIMIT_MESSAGES="1000",
    )
    pid = srv.proc.pid
    with processes.explain():
        watcher, hello = await RemoteSocket.open(srv.ws_url("lobby"), cookies["bob"])
        assert hello["seq"] == ROOM_MESSAGES
        poster, _ = await RemoteSocket.open(srv.ws_url("lobby"), cookies["alice"])
        # Warm up: one full replay to a reading client, so what follows measures only what the
        # slow client makes the server hold.
        reader, _ = await RemoteSocket.open(srv.ws_url("lobby", "after_seq=0"), cookies["bob"])
        await reader.wait_seq(ROOM_MESSAGES)
        await reader.close()
        before = rss(pid)["VmRSS"]
        reset_peak(pid)

        slow = SlowClient(srv.ws_url("lobby"), cookies["bob"])
        assert (await slow.open())["type"] == "sync.done"
        for _ in range(SYNCS):
            await slow.send({"type": "sync", "after_seq": 0})

        # Meanwhile, live messages reach the other sockets of the room, in order, in time.
        sent = []
        for i in range(LIVE):
            posted = await poster.post(f"live {i}")
            sent.append(posted["seq"])
            started = time.monotonic()
            await watcher.wait_seq(posted["seq"], timeout=5)
            assert time.monotonic() - started < 5
        assert [s for s in watcher.seqs] == sent

        await async_wait_until(
            _logged(srv, SLOW_LOG_LINE), timeout=60, what="the slow socket to be closed"
        )
        peak = rss(pid)["VmHWM"]
        growth = peak - before
        print(
            f"\n{server}: RSS {before / MiB:.1f} MiB before, peak {peak / MiB:.1f} MiB "
            f"(+{growth / MiB:.1f} MiB) for {SYNCS} syncs of {ROOM_MESSAGES} messages"
        )
        # The client wakes up: it finds what was queued for it, then the close with its code.
        assert await slow.read_to_close() == protocol.CLOSE_TOO_SLOW
        assert growth < 32 * MiB
        slow.close()
        for sock in (watcher, poster):
            await sock.close()


def _logged(srv, text: str):
    async def condition() -> bool:
        return text in srv.output()

    return condition


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_live_fan_out_never_waits_for_a_socket_that_does_not_read(
    processes, cookies, lobby, alice, server
):
    """8 MB of live messages while one socket of the room reads nothing: the others get every
    message, in order, at once; the slow one is closed when over the limit for the grace
    period. (uvicorn's send used to wait for the slow client, and the fan-out with it.)"""
    srv = processes.daphne(
        server=server,
        PARLEY_SLOW_CLIENT_GRACE_SECONDS=GRACE,
        PARLEY_SLOW_CLIENT_LIMIT_BYTES=str(MiB),
    )
    with processes.explain():
        watcher, _ = await RemoteSocket.open(srv.ws_url("lobby"), cookies["bob"])
        slow = SlowClient(srv.ws_url("lobby"), cookies["bob"])
        assert (await slow.open())["type"] == "sync.done"
        count = 2_000
        await database_sync_to_async(seed)(lobby, alice, count, size=4_000)
        await watcher.wait_seq(count, timeout=30)
        assert watcher.seqs == list(range(1, count + 1))
        await async_wait_until(
            _logged(srv, SLOW_LOG_LINE), timeout=30, what="the slow socket to be closed"
        )
        assert await slow.read_to_close() == protocol.CLOSE_TOO_SLOW
        slow.close()
        await watcher.close()
