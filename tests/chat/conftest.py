"""Fixtures of the socket tests."""

from __future__ import annotations

import contextlib

import pytest_asyncio
from channels.testing import WebsocketCommunicator

from tests.support import ws


@pytest_asyncio.fixture
async def disconnect_leftover_sockets(monkeypatch):
    """Every test disconnects its sockets; this closes those a failing test left open, so no
    consumer task or subscription outlives its test."""
    opened: list[WebsocketCommunicator] = []

    class TrackedCommunicator(WebsocketCommunicator):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(ws, "WebsocketCommunicator", TrackedCommunicator)
    yield
    for comm in opened:
        if not comm.future.done():
            with contextlib.suppress(Exception):
                await comm.disconnect()
