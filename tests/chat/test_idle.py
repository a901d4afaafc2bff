"""Idle sockets survive: redis-py 8 times out a connection that reads nothing for 5 s by default,
which would cut a quiet process' channel-layer subscription."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.procs import RemoteSocket

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]


async def test_idle_sockets_still_receive_after_twelve_quiet_seconds(processes, cookies):
    daphne = processes.daphne()
    with processes.explain():
        alice, _ = await RemoteSocket.open(daphne.ws_url("lobby"), cookies["alice"])
        bob, _ = await RemoteSocket.open(daphne.ws_url("lobby"), cookies["bob"])

        # The one deliberate sleep: nothing happens for longer than redis-py's 5 s socket
        # timeout (twice over), which is exactly the condition under test.
        await asyncio.sleep(12)

        message = await alice.post("still there?")
        assert message["seq"] == 1
        for sock in (alice, bob):
            await sock.wait_seq(1, timeout=5)
            await sock.round_trip()
            assert sock.seqs == [1]
            assert sock.received[0]["body"] == "still there?"
            await sock.close()
        # Delivered live, not rescued by a reconnect and catch-up.
        assert "subscription lost" not in daphne.output()
