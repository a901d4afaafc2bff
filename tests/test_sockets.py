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
