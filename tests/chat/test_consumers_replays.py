"""Replays the room socket runs by itself, through the real router, layer and database.

(The rules are unit-tested in tests/chat/test_delivery.py; this checks the consumer runs them.)
"""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from chat import selectors
from chat.models import Message
from contract import events
from tests.chat.test_consumers import (
    assert_next_is_sentinel,
    insert_without_publishing,
    save_message,
)
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


FAR_BEHIND = 2_000
SENDER_CAP = 3_000  # messages: far more than a replay needs here, far less than the timeout


@pytest.mark.timeout(120)
async def test_a_resume_far_behind_ends_while_a_sender_keeps_posting(
    lobby, alice, bob, monkeypatch
):
    """A socket 2,000 messages behind resumes while alice posts every few milliseconds. The
    replay used to pass over the database again for as long as a message came in during its
    last pass, so it ended only when the sender stopped; now the live events that arrive
    during a pass are kept and follow it: sync.done comes while the sender is still posting,
    after one pass (and at most one short one), and every message arrives once, in order."""
    await insert_without_publishing(lobby, alice, FAR_BEHIND)
    passes = []
    room_position = selectors.room_position

    def counted(**kwargs):
        """A pass reads the room's position first; a message is committed right after, so
        that every pass, however short, has one arriving while it runs (the old loop then
        owed another pass, each time)."""
        passes.append(kwargs)
        position = room_position(**kwargs)
        if len(passes) <= 50:
            Message.objects.create(room=lobby, author=alice, body=f"during pass {len(passes)}")
        return position

    monkeypatch.setattr(selectors, "room_position", counted)
    synced, stop = asyncio.Event(), asyncio.Event()
    posted_after_sync = 0

    async def send_continuously() -> int:
        """Post until told to stop (some while the replay runs, some after its sync.done);
        the number of messages posted."""
        nonlocal posted_after_sync
        for n in range(SENDER_CAP):
            await save_message(lobby, alice, f"live {n}")
            if synced.is_set():
                posted_after_sync += 1
                if posted_after_sync == 20:
                    stop.set()
            if stop.is_set():
                return n + 1
            await asyncio.sleep(0.005)  # the pace of a busy room, not a wait for a condition
        return SENDER_CAP

    sender = asyncio.create_task(send_continuously())
    await asyncio.sleep(0.05)  # a few messages posted before the socket connects
    sock, frame = await open_socket(bob, query=f"after_seq=0&after_change={C}")
    seqs, live_after_sync = [], 0
    while frame["type"] != "sync.done":
        assert frame["type"] == "message.new" and frame["replay"] is True
        seqs.append(frame["message"]["seq"])
        frame = await sock.recv()
    synced.set()
    assert not sender.done()  # sync.done while the sender is still posting
    assert frame["seq"] == seqs[-1] and frame["change"] == C + frame["seq"]
    assert len(passes) <= 2  # one pass over the 2,000, and at most one short one
    posted = await asyncio.wait_for(sender, 60) + len(passes)
    assert posted_after_sync == 20
    while seqs[-1] < FAR_BEHIND + posted:
        frame = await sock.recv()
        assert frame["type"] == "message.new" and "replay" not in frame  # live frames
        seqs.append(frame["message"]["seq"])
        live_after_sync += 1
    assert seqs == list(range(1, FAR_BEHIND + posted + 1))  # each once, in order
    assert live_after_sync >= 20
    assert await assert_next_is_sentinel(sock, lobby, alice) == FAR_BEHIND + posted + 1
    await sock.disconnect()
