"""A send to a client that has just gone must not crash the consumer (nor skip its cleanup)."""

from __future__ import annotations

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer

from config.sockets import ClientGoneSafeSend, Disconnected


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
