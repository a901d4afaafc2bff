"""A wave of connects reaches a busy server (realtime.servers.BACKLOG): the kernel queues them
for accept instead of dropping their SYNs, which cost each dropped client 1, 3, 7 s of
retransmits (daphne's Twisted endpoint queued 50). Real server processes, real TCP."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time

import pytest

from realtime import servers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(60)]

WAVE = 300  # above daphne's old backlog of 50, well under the new one


def _established(port: int, count: int, seconds: float) -> int:
    """Open ``count`` connections at once; how many the kernel completed within ``seconds``."""
    pending: dict[int, socket.socket] = {}
    done = 0
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", port))
            pending[sock.fileno()] = sock
        opened = list(pending.values())
        deadline = time.monotonic() + seconds
        while pending and (left := deadline - time.monotonic()) > 0:
            _, writable, _ = select.select([], list(pending), [], left)
            for fd in writable:
                sock = pending.pop(fd)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    done += 1
        return done
    finally:
        for sock in opened:
            sock.close()


@pytest.mark.parametrize("server", servers.SERVERS)
def test_a_server_that_is_not_accepting_queues_a_wave_of_connects(processes, server):
    srv = processes.daphne(server=server)
    os.kill(srv.proc.pid, signal.SIGSTOP)  # busy: accepts nothing while the wave arrives
    try:
        established = _established(srv.port, WAVE, seconds=1.5)
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)
    assert established == WAVE  # with daphne's old backlog of 50: 50
    assert srv.ready()  # and it serves on
