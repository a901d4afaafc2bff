"""The ASGI servers Parley runs on, as one command line each: ``serve`` (``make run``), the
benchmark and the tests start them from here.

daphne is the default. uvicorn (with the sans-I/O ``websockets`` implementation, uvloop and
httptools) is the measured-faster option: its WebSocket send is one ``transport.write`` of a
frame built by ``websockets``, where daphne's goes through autobahn and a Twisted reactor that
registers a writer with the event loop for every frame (see README, Performance).

Both bound how long a client may take to send a request (``PARLEY["HTTP_REQUEST_TIMEOUT"]``,
against slowloris): daphne through ``config.daphne_server``, uvicorn through its protocol class
``config.uvicorn_http``; uvicorn also closes idle keep-alive connections after
``KEEP_ALIVE_SECONDS``. A WebSocket, once its handshake is in, is not affected.
"""

from __future__ import annotations

import sys

SERVERS = ("daphne", "uvicorn")
DEFAULT = "daphne"
APPLICATION = "config.asgi:application"
KEEP_ALIVE_SECONDS = 5  # uvicorn: an idle keep-alive connection is closed after this


def command(server: str, host: str, port: int) -> list[str]:
    """argv that serves the ASGI application on ``host:port`` with ``server``."""
    if server == "daphne":
        return [
            sys.executable,
            "-m",
            "config.daphne_server",
            "-b",
            host,
            "-p",
            str(port),
            APPLICATION,
        ]
    if server == "uvicorn":
        return [
            sys.executable,
            "-m",
            "config.uvicorn_server",  # uvicorn, with a graceful SIGTERM
            APPLICATION,
            "--host",
            host,
            "--port",
            str(port),
            "--ws",
            "websockets-sansio",
            "--loop",
            "uvloop",
            "--http",
            "config.uvicorn_http:DeadlineHttpToolsProtocol",  # httptools, with a deadline
            "--timeout-keep-alive",
            str(KEEP_ALIVE_SECONDS),
            "--lifespan",
            "off",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
        ]
    raise ValueError(f"unknown server {server!r}: choose from {', '.join(SERVERS)}")
