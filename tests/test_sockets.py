"""A send to a client that has just gone must not crash the consumer (nor skip its cleanup)."""

from __future__ import annotations

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer

from config.sockets import ClientGoneSafeSend, Disconnected, frame_writer, text_frame


class Probe(ClientGoneSafeSend, AsyncWebsocketConsumer):
    def __init__(self, fail_with: BaseException | None) -> None:
        super().__init__()
        self.sent: list[dict] = []
        self.fail_with = fail_with

    async def base_send(self, message: dict) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message)


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


def test_servers_it_does_not_know_get_no_frame_writer():
    async def send(message):  # e.g. channels' test communicator
        pass

    assert frame_writer(send) is None


@pytest.mark.asyncio
async def test_a_direct_write_never_overtakes_a_send_still_in_the_server():
    """The first frame goes through the server's send (the writer declines: say the client
    is not reading) and waits there; a frame sent meanwhile must queue behind it, not be
    written straight away, and direct writes resume once the server's send is done."""
    import asyncio

    wire: list[bytes] = []
    accept = [False]

    def write_frame(frame: bytes) -> bool:
        if accept[0]:
            wire.append(frame)
        return accept[0]

    released = asyncio.Event()
    probe = Probe(fail_with=None)
    probe.write_frame = write_frame

    async def slow_base_send(message: dict) -> None:
        await released.wait()
        wire.append(text_frame(message["text"]))

    probe.base_send = slow_base_send
    first = asyncio.create_task(probe.send("first"))
    await asyncio.sleep(0)  # it is now waiting in the server's send
    accept[0] = True  # the writer would take frames again
    second = asyncio.create_task(probe.send("second"))
    await asyncio.sleep(0)
    assert wire == []  # "second" did not overtake
    released.set()
    await asyncio.gather(first, second)
    await probe.send("third")  # nothing in the server's send now: written directly
    assert wire == [text_frame("first"), text_frame("second"), text_frame("third")]
