"""A rolling restart behind the real nginx with deploy/nginx's configuration (README,
Production; DEPLOY.md): nothing lost, nothing twice, no connection cut without a close frame.

Two server processes (daphne and uvicorn, each with a graceful SIGTERM: ops/drain.py) behind
nginx; 100 listeners and a sender posting 20 messages a second, all through nginx, all
resuming as static/parley/client.js does. Each process in turn gets SIGTERM, exits, and is
started again on its port. Then: every listener received every message exactly once, in order;
every post the sender made was stored once and every ack names a stored message; every close
a client saw was 1012 or 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import urllib.request
from collections import Counter

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.db import connections

from chat.models import Message
from realtime import servers
from tests.support.nginx import Nginx, nginx_binary
from tests.support.procs import Server, async_wait_until
from tests.support.resuming import Listener, Sender

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.timeout(120),
]

LISTENERS = 100
PER_SECOND = 20
SERVER_ENV = {
    "PARLEY_DRAIN_SECONDS": "0.5",  # production: 5 s, for a readiness probe to notice
    "PARLEY_DRAIN_CLOSE_TIMEOUT_SECONDS": "10",
    "PARLEY_RATE_LIMIT_MESSAGES": "100000",  # one sender at 20 msg/s
}


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_thread_connections():
    yield
    await database_sync_to_async(connections.close_all)()


def behind_nginx(log_dir, name: str, server: str, port: int | None = None) -> Server:
    """A server process as deploy/systemd/parley-web@.service runs it (--behind-proxy)."""
    process = Server(log_dir, name=name, server=server, port=port, **SERVER_ENV)
    process.args = servers.command(server, "127.0.0.1", process.port, behind_proxy=True)
    return process


@contextlib.asynccontextmanager
async def phase(what: str, seconds: float = 30):
    """Fail (rather than hang) when ``what`` is not done within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise AssertionError(f"not within {seconds}s: {what}") from None


def healthz_pid(port: int) -> int | None:
    """The pid of the process nginx sent this /healthz to (None: no answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:  # noqa: S310
            return json.loads(response.read())["pid"]
    except OSError:
        return None


async def restart(processes, process: Server, nginx: Nginx, generation: int) -> Server:
    """SIGTERM, wait for the exit, start it again on its port; return once nginx routes a
    request to the new process (it skips a failed one for fail_timeout)."""
    process.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(process.proc.wait, 30)
    assert code in (0, -signal.SIGTERM), f"{process.name} exited with {code}"
    again = behind_nginx(
        processes.log_dir, f"{process.server}-{generation}", process.server, process.port
    )
    await asyncio.to_thread(processes.start, again)

    async def routed() -> bool:  # least_conn: a quick /healthz goes to the idle new process
        return await asyncio.to_thread(healthz_pid, nginx.port) == again.proc.pid

    await async_wait_until(routed, what=f"nginx routing to {again.name}")
    return again


async def test_rolling_restart_behind_nginx_loses_nothing(processes, cookies):
    nginx_binary()  # skip (or fail, in CI) before starting anything
    first = processes.start(behind_nginx(processes.log_dir, "daphne-1", "daphne"))
    second = processes.start(behind_nginx(processes.log_dir, "uvicorn-1", "uvicorn"))
    nginx = processes.start(Nginx(processes.log_dir, [first.port, second.port]))
    url = f"ws://127.0.0.1:{nginx.port}/ws/rooms/lobby/"
    origin = f"http://127.0.0.1:{nginx.port}"  # checked against Host, passed on by nginx

    def headers(user: str) -> dict[str, str]:
        return {"Cookie": cookies[user], "Origin": origin}

    listeners = [Listener(url, headers("bob")) for _ in range(LISTENERS)]
    sender = Sender(url, headers("alice"), PER_SECOND)
    tasks = [asyncio.create_task(listener.run()) for listener in listeners]
    try:
        with processes.explain():
            async with phase("100 listeners connected"):
                for listener in listeners:
                    await listener.synced.wait()
            tasks.append(asyncio.create_task(sender.run()))
            async with phase("20 posts acked"):
                await sender.wait_acked(20)
            first = await restart(processes, first, nginx, 2)
            async with phase("20 more posts acked after the first restart"):
                await sender.wait_acked(len(sender.acked) + 20)
            second = await restart(processes, second, nginx, 2)
            async with phase("20 more posts acked after the second restart"):
                await sender.wait_acked(len(sender.acked) + 20)
            sender.stop.set()
            async with phase("every post acked"):
                await tasks.pop()
            stored = await database_sync_to_async(
                lambda: dict(Message.objects.values_list("client_id", "seq"))
            )()
            for listener in listeners:
                listener.finish(len(stored))
            async with phase(f"every listener up to seq {len(stored)}"):
                await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    total = len(sender.sent)
    # Sent == stored == received: every post once, and every ack names its stored message.
    assert sender.refused == []
    assert {str(client_id): seq for client_id, seq in stored.items()} == sender.acked
    assert len(stored) == total and sorted(stored.values()) == list(range(1, total + 1))
    for listener in listeners:
        assert listener.seqs == list(range(1, total + 1))  # each once, in order
    closes = [code for client in [*listeners, sender] for code in client.closes]
    assert set(closes) <= {1012, 1001}, f"close codes seen: {sorted(set(closes))}"
    assert all(listener.closes for listener in listeners)  # each was moved at least once
    failed = sum((client.failed_connects for client in [*listeners, sender]), Counter())
    print(  # noqa: T201 - the figures of the run, for the report (pytest -s)
        f"{total} messages, {LISTENERS} listeners: {len(closes)} closes, "
        f"failed connects: {dict(failed)}"
    )
