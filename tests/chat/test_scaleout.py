"""Two daphne processes sharing one Redis and one database act as one server."""

from __future__ import annotations

import pytest

from tests.support.procs import RemoteSocket
from tests.support.rooms import C

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]


async def test_messages_posted_to_either_process_reach_clients_of_both(processes, cookies):
    a = processes.daphne(name="daphne-a")
    b = processes.daphne(name="daphne-b")
    assert a.port != b.port
    with processes.explain():
        on_a, hello_a = await RemoteSocket.open(a.ws_url("lobby"), cookies["alice"])
        on_b, hello_b = await RemoteSocket.open(b.ws_url("lobby"), cookies["bob"])
        assert hello_a == hello_b == {"type": "sync.done", "seq": 0, "change": C}

        sent: list[str] = []
        for seq in range(1, 21):
            # Odd seqs go to process A, even ones to process B.
            sender, other = (on_a, on_b) if seq % 2 else (on_b, on_a)
            body = f"{'A' if seq % 2 else 'B'} {seq}"
            message = await sender.post(body)
            sent.append(body)
            assert message["seq"] == seq
            # The other process' client has it before the next post: a live push across
            # processes, since no later seq exists yet that could make it catch up.
            await other.wait_seq(seq)
            await sender.wait_seq(seq)

        for sock in (on_a, on_b):
            await sock.round_trip()
            assert sock.seqs == list(range(1, 21))
            assert [m["body"] for m in sock.received] == sent
            await sock.close()
