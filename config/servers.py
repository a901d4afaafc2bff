"""The ASGI servers Parley runs on, as one command line each: ``serve`` (``make run``), the
benchmark and the tests start them from here.

daphne is the default. uvicorn (with the sans-I/O ``websockets`` implementation, uvloop and
httptools) is the measured-faster option: its WebSocket send is one ``transport.write`` of a
frame built by ``websockets``, where daphne's goes through autobahn and a Twisted reactor that
registers a writer with the event loop for every frame (see README, Performance).
"""

from __future__ import annotations

import sys

SERVERS = ("daphne", "uvicorn")
DEFAULT = "daphne"
APPLICATION = "config.asgi:application"


def command(server: str, host: str, port: int) -> list[str]:
    """argv that serves the ASGI application on ``host:port`` with ``server``."""
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), APPLICATION]
    if server == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
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
            "httptools",
            "--lifespan",
            "off",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
        ]
    raise ValueError(f"unknown server {server!r}: choose from {', '.join(SERVERS)}")
