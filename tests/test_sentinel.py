"""Parley on a Sentinel-managed Redis (REDIS_URL redis+sentinel://...): a primary, a replica and
three sentinels; daphne, the relay and the analytics and mentions workers follow a failover.

200 messages are posted at 20 msg/s to 20 listeners while the primary is first handed over
(SENTINEL FAILOVER) and then the new primary is killed (SIGKILL, the sentinels elect the old
one again): posts keep succeeding, every listener gets every message once in order, and every
subscriber processes every event exactly once. The time from each failover to the first
message delivered after it is printed (run with -s to see it).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.db import connections

from infra.redis_url import parse_sentinel
from tests.support.load import (
    MENTION_EVERY,
    RATE,
    assert_every_socket_got_all,
    assert_processed_once,
    expected,
    post_at_rate,
)
from tests.support.procs import RemoteSocket
from tests.support.sentinel import SentinelStack

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(150),
]

MESSAGES = 200
LISTENERS = 20
FAILOVER_AT = 40
KILL_AT = 120


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_thread_connections():
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def sentinels(tmp_path):
    stack = SentinelStack(tmp_path / "redis")
    stack.workdir.mkdir()
    yield stack.start()
    stack.stop()


async def stamped(sock: RemoteSocket, until_seq: int, arrivals: dict[int, float]) -> None:
    """Read ``sock`` until ``until_seq``, noting when each seq first arrived."""
    while not sock.received or max(sock.seqs) < until_seq:
        await sock.recv(timeout=60)
        for seq in sock.seqs[len(arrivals) :]:
            arrivals.setdefault(seq, time.monotonic())


async def test_a_failover_loses_no_message_and_no_event(processes, sentinels, cookies):
    url = sentinels.url
    assert parse_sentinel(url) is not None
    first_primary = sentinels.primary_port()
    daphne = processes.daphne(redis_url=url, PARLEY_RATE_LIMIT_MESSAGES="100000")
    relay = processes.relay(redis_url=url)
    processes.worker("analytics", "mentions", redis_url=url, PARLEY_BROKER_LINGER_MS="500")
    with processes.explain():
        poster, _ = await RemoteSocket.open(daphne.ws_url("lobby"), cookies["alice"])
        listeners = [
            (await RemoteSocket.open(daphne.ws_url("lobby"), cookies["bob"]))[0]
            for _ in range(LISTENERS)
        ]
        arrivals: dict[int, float] = {}
        reading = [asyncio.create_task(stamped(listeners[0], MESSAGES, arrivals))]
        reading += [asyncio.create_task(s.wait_seq(MESSAGES, timeout=90)) for s in listeners[1:]]
        events: dict[str, tuple[int, float]] = {}
        primary = [first_primary]

        async def before(i: int) -> None:
            now = time.monotonic()
            if i == FAILOVER_AT:
                sentinels.failover()
                events["SENTINEL FAILOVER"] = (i, now)
            elif i == KILL_AT:
                assert primary[-1] != first_primary, "the first failover did not happen"
                sentinels.kill(primary[-1])
                events["SIGKILL of the primary"] = (i, now)
            elif i > FAILOVER_AT:
                port = sentinels.primary_port()
                if port != primary[-1]:
                    primary.append(port)
                    events[f"sentinels name primary #{len(primary)}"] = (i, now)

        await post_at_rate(poster, MESSAGES, before)
        await asyncio.gather(*reading)
        await assert_every_socket_got_all([poster, *listeners], MESSAGES)
        await assert_processed_once(expected(MESSAGES, MESSAGES // MENTION_EVERY), url)
        assert primary == [first_primary, sentinels.data_ports[1], first_primary]
        # Each promotion was noticed and repaired (a new replication id, or the marker missing
        # from a primary that had not caught up).
        assert relay.output().count("Redis lost its data (its") >= 2
        for what, (seq, at) in events.items():
            delay = min(t for s, t in arrivals.items() if s >= seq) - at
            window = [arrivals[s] for s in range(seq, min(seq + 4 * RATE, MESSAGES) + 1)]
            gap = max(b - a for a, b in zip(window, window[1:], strict=False))
            print(
                f"\n{what} (before post {seq}): the first message after it delivered "
                f"{delay * 1000:.0f} ms later; longest gap between deliveries in the next "
                f"4 s: {gap * 1000:.0f} ms"
            )
