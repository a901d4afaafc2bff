"""Replays the room socket runs by itself, through the real router, layer and database.

(The rules are unit-tested in tests/chat/test_delivery.py; this checks the consumer runs them.)
"""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from chat import selectors
from contract import events
from tests.support.rooms import C
from tests.support.ws import TIMEOUT, open_socket

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("disconnect_leftover_sockets"),
]


async def test_a_redis_reconnect_in_a_quiet_room_costs_one_pass(lobby, bob, monkeypatch):
    """A reconnect owes one pass over the database, not a change number to wait for: the
    catch-up used to read the room's position again and again until a message came."""
    sock, hello = await open_socket(bob)
    assert hello == {"type": "sync.done", "seq": 0, "change": C}
    loop = asyncio.get_running_loop()
    positions_read = []
    started = asyncio.Event()
    room_position = selectors.room_position

    def counted(**kwargs):
        positions_read.append(kwargs)
        loop.call_soon_threadsafe(started.set)
        return room_position(**kwargs)

    monkeypatch.setattr(selectors, "room_position", counted)
    await get_channel_layer().group_send(events.room_group(lobby.pk), {"type": "layer.reconnected"})
    await asyncio.wait_for(started.wait(), TIMEOUT)  # its catch-up runs

    # A sync waits for the catch-up to end (replays run one at a time).
    await sock.send({"type": "sync", "after_seq": 0})
    assert await sock.recv() == {"type": "sync.done", "seq": 0, "change": C}
    assert len(positions_read) == 2  # the reconnect's pass, then the sync's
    await sock.disconnect()
