"""Slowloris: a client that sends a request slowly is disconnected by both ASGI servers
(realtime.daphne_server, realtime.uvicorn_http), while complete requests and open WebSockets are
not affected. Real server processes, a raw TCP client."""

from __future__ import annotations

import select
import socket
import time

import pytest
from channels.db import database_sync_to_async
from django.db import connections

from tests.support.procs import RemoteSocket
from tests.support.ws import session_cookie

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TIMEOUT = 2.0  # PARLEY_HTTP_REQUEST_TIMEOUT of the servers started here
SERVERS = ["daphne", "uvicorn"]


def _dribble(port: int, start: bytes, limit: float) -> float | None:
    """Send ``start``, then one more header byte every 0.2 s (each resets an idle timeout);
    return how long the server took to close the connection, or None if it kept it past
    ``limit`` seconds. Waits on the socket becoming readable (the close), not on a clock."""
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(start)
        while time.monotonic() - began < limit:
            readable, _, _ = select.select([conn], [], [], 0.2)
            if readable:
                try:
                    data = conn.recv(4096)
                except ConnectionResetError:
                    data = b""
                if not data:
                    return time.monotonic() - began
                continue  # an error response before the close; the close follows
            try:
                conn.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - began
    return None


def _get(port: int, path: str = "/accounts/login/") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
        return out


@pytest.mark.asyncio
@pytest.mark.timeout(90)
@pytest.mark.parametrize("server", SERVERS)
async def test_a_slow_request_is_disconnected_within_the_timeout(processes, lobby, bob, server):
    srv = processes.daphne(server=server, PARLEY_HTTP_REQUEST_TIMEOUT=str(TIMEOUT))
    cookie = await database_sync_to_async(session_cookie)(bob)
    try:
        with processes.explain():
            # A WebSocket opened first outlives every deadline below.
            ws, first = await RemoteSocket.open(srv.ws_url("lobby"), cookie)
            assert first["type"] == "sync.done"
            # A request line, dribbled; then complete headers dribbled one by one.
            took = _dribble(srv.port, b"GET /accounts/login/ HT", limit=TIMEOUT + 8)
            assert took is not None and took < TIMEOUT + 3, f"{server} kept it {took}"
            took = _dribble(srv.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ", TIMEOUT + 8)
            assert took is not None and took < TIMEOUT + 3, f"{server} kept it {took}"
            # A whole request, answered; then the next one on the same connection, dribbled.
            answered_then = b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HT"
            took = _dribble(srv.port, answered_then, TIMEOUT + 8)
            assert took is not None and took < TIMEOUT + 3, f"{server} kept it {took}"
            # A prompt request is answered; the WebSocket, older than both deadlines, still is.
            assert _get(srv.port).startswith(b"HTTP/1.1 200")
            await ws.round_trip()
            await ws.close()
    finally:
        await database_sync_to_async(connections.close_all)()
