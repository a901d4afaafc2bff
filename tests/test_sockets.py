"""Frames made once for every socket, and the servers' connections (realtime.sockets)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from realtime.sockets import connection, text_frame


@pytest.mark.parametrize(
    "text", ["", "x", "x" * 125, "x" * 126, "é" * 3000, "x" * 65535, "x" * 65536, "ü" * 40000]
)
def test_a_frame_made_once_is_a_valid_unmasked_text_frame(text):
    """``text_frame`` for each payload-length encoding (7-bit, 16-bit, 64-bit), read back by
    the websockets library's own frame parser as a client would."""
    from websockets.frames import Frame, Opcode
    from websockets.streams import StreamReader

    reader = StreamReader()
    reader.feed_data(text_frame(text))
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    else:
        raise AssertionError("the frame was incomplete")
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert frame.data.decode() == text
    assert not reader.buffer  # nothing left over


def test_servers_it_does_not_know_get_no_connection():
    async def send(message):  # e.g. channels' test communicator
        pass

    assert connection(send) is None


class FakeTwistedTransport:
    """What DaphneConnection's reading control touches of a Twisted transport."""

    connected = True

    def __init__(self) -> None:
        self.reading = True

    def pauseProducing(self) -> None:  # noqa: N802
        self.reading = False

    def resumeProducing(self) -> None:  # noqa: N802
        self.reading = True


def test_daphne_reads_no_further_ahead_of_the_application_than_a_few_frames():
    """daphne queues every frame it reads for the application, however far behind it is:
    reading stops at MAX_UNREAD_FRAMES waiting and resumes once half of them are taken."""
    from types import SimpleNamespace

    from realtime.sockets.daphne import MAX_UNREAD_FRAMES, DaphneConnection

    transport = FakeTwistedTransport()
    inbox: asyncio.Queue = asyncio.Queue()
    conn = DaphneConnection(SimpleNamespace(transport=transport), inbox)
    for i in range(MAX_UNREAD_FRAMES + 1):
        inbox.put_nowait(i)
    conn.receiving()
    inbox.get_nowait()
    conn.received()  # the application took one; 16 more wait
    assert not transport.reading
    while inbox.qsize() >= MAX_UNREAD_FRAMES // 2:
        conn.receiving()
        assert not transport.reading
        inbox.get_nowait()
        conn.received()
    conn.receiving()  # fewer than half wait: read again
    assert transport.reading


def test_daphne_reading_resumes_only_when_no_reason_to_pause_is_left():
    """Waiting for the client to drain also stops reading; taking frames from the inbox
    meanwhile must not start reading again, nor the end of the wait while the inbox is full."""
    from types import SimpleNamespace

    from realtime.sockets.daphne import _DRAINING, _INBOX_FULL, DaphneConnection

    transport = FakeTwistedTransport()
    conn = DaphneConnection(SimpleNamespace(transport=transport), asyncio.Queue())
    conn._pause(_DRAINING)
    conn._pause(_INBOX_FULL)
    conn._resume(_INBOX_FULL)
    assert not transport.reading
    conn._pause(_INBOX_FULL)
    conn._resume(_DRAINING)
    assert not transport.reading
    conn._resume(_INBOX_FULL)
    assert transport.reading


# --- an adapter declines rather than raising (realtime.sockets.base.Adapter) ----------------------


def test_an_adapter_whose_server_lacks_an_attribute_declines_once(monkeypatch, caplog):
    """Checked on the first connection: a missing attribute turns the adapter off for every
    connection, with one log line."""
    from types import SimpleNamespace

    from realtime.sockets.uvicorn import UvicornConnection

    monkeypatch.setattr(UvicornConnection, "usable", None)
    protocol = SimpleNamespace(conn=SimpleNamespace(), transport=SimpleNamespace())
    with caplog.at_level(logging.WARNING, logger="parley.ws"):
        assert UvicornConnection.of(protocol) is None
        assert UvicornConnection.of(protocol) is None
    assert caplog.text.count("uvicorn adapter declined") == 1
    assert "conn.send_text" in caplog.text


def test_an_attribute_missing_at_write_time_never_escapes(monkeypatch, caplog):
    """State the first check found but a later connection lacks: no AttributeError leaves the
    adapter; the write is declined (nothing written) and the frame goes through the server's
    send; later connections get no adapter."""
    from types import SimpleNamespace

    from channels.generic.websocket import AsyncWebsocketConsumer

    from realtime.sending import ClientGoneSafeSend
    from realtime.sockets.daphne import DaphneConnection

    class Probe(ClientGoneSafeSend, AsyncWebsocketConsumer):
        async def base_send(self, message: dict) -> None:
            self.sent.append(message)

    monkeypatch.setattr(DaphneConnection, "usable", True)
    transport = SimpleNamespace(connected=True, _writeDisconnected=False, dataBuffer=b"")
    protocol = SimpleNamespace(state=1, STATE_OPEN=1, transport=transport)  # no offset, ...
    conn = DaphneConnection(protocol)
    with caplog.at_level(logging.WARNING, logger="parley.ws"):
        assert conn.write(text_frame("x")) is False
        assert conn.unsent() == 0 and not conn.congested()
        probe = Probe()
        probe.sent = []
        probe.connection = conn
        asyncio.run(probe.send("hello"))
    assert probe.sent == [{"type": "websocket.send", "text": "hello"}]
    assert DaphneConnection.usable is False
    assert caplog.text.count("daphne adapter declined") == 1


def test_a_uvicorn_write_missing_an_attribute_is_declined(monkeypatch):
    from types import SimpleNamespace

    from realtime.sockets.uvicorn import UvicornConnection

    monkeypatch.setattr(UvicornConnection, "usable", True)
    conn = UvicornConnection(SimpleNamespace(conn=SimpleNamespace(extensions=[])))
    assert conn.write(text_frame("x")) is False
    assert conn.write_text("x") is False
    assert not conn.congested()
    assert UvicornConnection.usable is False
