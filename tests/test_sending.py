"""A send to a client that has just gone must not crash the consumer (nor skip its cleanup), and
a client that does not read is written to no faster than it reads, or closed (realtime.sending)."""

from __future__ import annotations

import asyncio

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from realtime.sending import ClientGoneSafeSend
from realtime.sockets import Connection, Disconnected, text_frame


class Probe(ClientGoneSafeSend, AsyncWebsocketConsumer):
    def __init__(self, fail_with: BaseException | None) -> None:
        super().__init__()
        self.sent: list[dict] = []
        self.fail_with = fail_with
        self.closed = asyncio.Event()

    async def base_send(self, message: dict) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message)
        if message["type"] == "websocket.close":
            self.closed.set()


@pytest.mark.asyncio
@pytest.mark.parametrize("gone", [Disconnected("Attempt to send on a closed protocol"), OSError()])
async def test_a_send_after_the_client_left_is_dropped(gone):
    probe = Probe(fail_with=gone)
    await probe.send("first")  # does not raise
    assert probe.client_gone
    probe.fail_with = None
    await probe.send("second")  # skipped: the disconnect that follows cleans up
    assert probe.sent == []


@pytest.mark.asyncio
async def test_other_errors_still_raise():
    probe = Probe(fail_with=ValueError("a bug"))
    with pytest.raises(ValueError):
        await probe.send("x")
    assert not probe.client_gone


@pytest.mark.asyncio
async def test_normal_sends_go_through():
    probe = Probe(fail_with=None)
    await probe.send("hello")
    assert probe.sent == [{"type": "websocket.send", "text": "hello"}]


# --- a client that does not read (realtime.sockets.ClientGoneSafeSend with a connection) ----------


class FakeConnection(Connection):
    """A connection whose client reads when the test says so: ``unsent`` counts what was
    written and not read; ``accepting`` False makes direct writes decline (e.g. compression)."""

    def __init__(self) -> None:
        super().__init__(protocol=None)
        self.wire: list[bytes] = []
        self.held = 0
        self.accepting = True
        self.reads = asyncio.Event()
        self.flush: float | None = None

    def write(self, frame: bytes) -> bool:
        if self.accepting:
            self.wire.append(frame)
            self.held += len(frame)
        return self.accepting

    def unsent(self) -> int:
        return self.held

    def congested(self) -> bool:
        return self.held > settings.PARLEY["WRITE_HIGH_WATER_BYTES"]

    async def drained(self) -> bool:
        while self.congested():
            self.reads.clear()
            await self.reads.wait()
        return True

    def read(self, n: int | None = None) -> None:
        self.held = 0 if n is None else max(0, self.held - n)
        self.reads.set()

    def closing(self, flush: float) -> None:
        self.flush = flush


@pytest.fixture
def limits(settings):
    """High-water mark 1,000 bytes, limit 3,000, grace 0.2 s."""
    settings.PARLEY = {
        **settings.PARLEY,
        "WRITE_HIGH_WATER_BYTES": 1000,
        "SLOW_CLIENT_LIMIT_BYTES": 3000,
        "SLOW_CLIENT_GRACE_SECONDS": 0.2,
    }


def paced_probe() -> tuple[Probe, FakeConnection]:
    probe = Probe(fail_with=None)
    probe.connection = FakeConnection()
    probe.slow_close_code = 4408
    return probe, probe.connection


def closes(probe: Probe) -> list[dict]:
    return [m for m in probe.sent if m["type"] == "websocket.close"]


@pytest.mark.asyncio
async def test_own_frames_wait_while_the_connection_is_above_the_high_water_mark(limits):
    """A replay writes no faster than the client reads: above the mark, ``send`` waits until
    the client has read enough, then goes on; nothing is closed."""
    probe, conn = paced_probe()
    for _ in range(2):
        await probe.send("x" * 500)  # 1,004 bytes: the second went over the mark
    blocked = asyncio.create_task(probe.send("next"))
    await asyncio.sleep(0)
    assert not blocked.done() and len(conn.wire) == 2
    conn.read(2)  # still above the mark: still waiting
    await asyncio.sleep(0)
    assert not blocked.done()
    conn.read()
    await blocked
    assert conn.wire[-1] == text_frame("next")
    assert closes(probe) == [] and not probe.client_gone


@pytest.mark.asyncio
async def test_a_client_that_does_not_drain_within_the_grace_period_is_closed(limits):
    probe, conn = paced_probe()
    await probe.send("x" * 1500)
    await probe.send("waits, then the socket is closed")  # returns after the grace period
    assert closes(probe) == [{"type": "websocket.close", "code": 4408, "reason": "too slow"}]
    assert conn.flush == 0.2  # the close frame gets a grace period to reach the client
    assert probe.client_gone and len(conn.wire) == 1
    await probe.send("after the close")
    assert len(conn.wire) == 1 and len(probe.sent) == 1


@pytest.mark.asyncio
async def test_live_writes_never_wait_and_a_socket_over_the_limit_is_closed(limits):
    """The fan-out's writes go out at once, above the mark too; a socket found over the limit
    and still over it a grace period later is closed."""
    probe, conn = paced_probe()
    for _ in range(8):
        assert probe.write_direct(text_frame("y" * 500))  # 4,000+ bytes: over the limit
    assert probe.slow_check is not None and closes(probe) == []
    await probe.closed.wait()  # by the check a grace period later
    assert closes(probe)[0]["code"] == 4408 and probe.client_gone


@pytest.mark.asyncio
async def test_a_socket_that_reads_below_the_limit_within_the_grace_period_stays(limits):
    probe, conn = paced_probe()
    checked = asyncio.Event()
    check = probe._check_slow
    probe._check_slow = lambda: (check(), checked.set())
    for _ in range(8):
        probe.write_direct(text_frame("y" * 500))
    assert probe.slow_check is not None
    conn.read(2000)  # the client reads: below the limit when the check runs
    await checked.wait()  # a grace period later
    assert closes(probe) == [] and not probe.client_gone and probe.slow_check is None
    probe.forget_connection()  # the consumer ends: nothing left scheduled


@pytest.mark.asyncio
async def test_a_direct_write_never_overtakes_a_send_still_in_the_server(limits):
    """The first frame goes through the server's send (the connection declines it: say,
    compression) and waits there; a frame sent meanwhile must queue behind it, not be written
    straight away, and direct writes resume once the server's send is done."""
    probe, conn = paced_probe()
    conn.accepting = False
    released = asyncio.Event()

    async def slow_base_send(message: dict) -> None:
        await released.wait()
        conn.wire.append(text_frame(message["text"]))

    probe.base_send = slow_base_send
    first = asyncio.create_task(probe.send("first"))
    await asyncio.sleep(0)  # it is now waiting in the server's send
    conn.accepting = True  # the connection would take frames again
    second = asyncio.create_task(probe.send("second"))
    await asyncio.sleep(0)
    assert conn.wire == []  # "second" did not overtake
    released.set()
    await asyncio.gather(first, second)
    await probe.send("third")  # nothing in the server's send now: written directly
    assert conn.wire == [text_frame("first"), text_frame("second"), text_frame("third")]


@pytest.mark.asyncio
async def test_closing_never_waits_for_a_client_that_does_not_read(limits):
    """A close (say, a flood of bad frames) of a socket whose client does not read lets the
    connection drop it a grace period later; after a close for slowness, nothing more goes."""
    probe, conn = paced_probe()
    probe.write_direct(text_frame("z" * 1500))
    await probe.close(code=4429)
    assert conn.flush == 0.2 and closes(probe)[0]["code"] == 4429

    probe, conn = paced_probe()
    await probe.send("z" * 1500)
    await probe.send("waits, then the socket is closed as too slow")
    await probe.close(code=4429)  # e.g. the frame that was being answered was the 50th bad one
    assert [m["code"] for m in closes(probe)] == [4408]
