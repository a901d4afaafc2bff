"""Frames made once for every socket, and the servers' connections (config.sockets)."""

from __future__ import annotations

import asyncio

import pytest

from config.sockets import connection, text_frame


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
    """What _DaphneConnection's reading control touches of a Twisted transport."""

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

    from config.sockets import MAX_UNREAD_FRAMES, _DaphneConnection

    transport = FakeTwistedTransport()
    inbox: asyncio.Queue = asyncio.Queue()
    conn = _DaphneConnection(SimpleNamespace(transport=transport), inbox)
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

    from config.sockets import _DRAINING, _INBOX_FULL, _DaphneConnection

    transport = FakeTwistedTransport()
    conn = _DaphneConnection(SimpleNamespace(transport=transport), asyncio.Queue())
    conn._pause(_DRAINING)
    conn._pause(_INBOX_FULL)
    conn._resume(_INBOX_FULL)
    assert not transport.reading
    conn._pause(_INBOX_FULL)
    conn._resume(_DRAINING)
    assert not transport.reading
    conn._resume(_INBOX_FULL)
    assert transport.reading
