"""The ASGI servers Parley runs on, as one command line each: ``serve`` (``make run``), the
benchmark and the tests start them from here.

daphne is the default. uvicorn (with the sans-I/O ``websockets`` implementation, uvloop and
httptools) is the measured-faster option: its WebSocket send is one ``transport.write`` of a
frame built by ``websockets``, where daphne's goes through autobahn and a Twisted reactor that
registers a writer with the event loop for every frame (see README, Performance).

Both bound how long a client may take to send a request (``PARLEY["HTTP_REQUEST_TIMEOUT"]``,
against slowloris): daphne through ``realtime.daphne_server``, uvicorn through its protocol class
``realtime.uvicorn_http``; uvicorn also closes idle keep-alive connections after
``KEEP_ALIVE_SECONDS``. A WebSocket, once its handshake is in, is not affected.

Both listen with a queue of ``BACKLOG`` connections not yet accepted (uvicorn's default; the
kernel caps it at ``net.core.somaxconn``). daphne's Twisted endpoint defaults to 50: in a
reconnect wave the kernel dropped the SYNs beyond it, and those clients waited 1, 3, 7 s for
their retransmits (a 1,000-socket storm took 8 s to connect on daphne, 3 s on uvicorn).
"""

from __future__ import annotations

import argparse
import os
import sys

SERVERS = ("daphne", "uvicorn")
DEFAULT = "daphne"
APPLICATION = "config.asgi:application"
KEEP_ALIVE_SECONDS = 5  # uvicorn: an idle keep-alive connection is closed after this
BACKLOG = 2048  # connections the kernel queues for accept (uvicorn's default)


def command(
    server: str, host: str, port: int, *, behind_proxy: bool = False, access_log: bool = True
) -> list[str]:
    """argv that serves the ASGI application on ``host:port`` with ``server``.

    ``behind_proxy``: the client address is the proxy's ``X-Forwarded-For`` (which the proxy
    must set, overwriting a client's: deploy/nginx), so sign-up throttles, login lockouts and
    the /metrics address check see the client, not the proxy. Only for a server that nothing
    but the proxy can reach (bound to 127.0.0.1). ``access_log=False``: daphne writes none
    (it is plain text outside logging; uvicorn writes none anyway)."""
    if server == "daphne":
        proxy = ["--proxy-headers"] if behind_proxy else []
        quiet = [] if access_log else ["--access-log", os.devnull]
        interface = host.strip("[]").replace(":", r"\:")  # Twisted's endpoint escaping
        return [
            sys.executable,
            "-m",
            "realtime.daphne_server",
            "-e",
            f"tcp:port={int(port)}:interface={interface}:backlog={BACKLOG}",
            *proxy,
            *quiet,
            APPLICATION,
        ]
    if server == "uvicorn":
        # uvicorn reads X-Forwarded-For from 127.0.0.1 by default (--forwarded-allow-ips).
        return [
            sys.executable,
            "-m",
            "realtime.uvicorn_server",  # uvicorn, with a graceful SIGTERM
            APPLICATION,
            "--host",
            host,
            "--port",
            str(port),
            "--backlog",
            str(BACKLOG),
            "--ws",
            "realtime.uvicorn_ws:LeanWebSocketsProtocol",  # websockets-sansio, leaner
            "--loop",
            "uvloop",
            "--http",
            "realtime.uvicorn_http:DeadlineHttpToolsProtocol",  # httptools, with a deadline
            "--timeout-keep-alive",
            str(KEEP_ALIVE_SECONDS),
            "--lifespan",
            "off",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
        ]
    raise ValueError(f"unknown server {server!r}: choose from {', '.join(SERVERS)}")


def main(argv: list[str] | None = None) -> None:
    """``python -m realtime.servers daphne --port 8001 --behind-proxy``: run one server process
    (what deploy/systemd/parley-web@.service runs), replaced by the server's own command."""
    parser = argparse.ArgumentParser(prog="python -m realtime.servers")
    parser.add_argument("server", choices=SERVERS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--behind-proxy", action="store_true", help="client address: X-Forwarded-For"
    )
    args = parser.parse_args(argv)
    argv = command(
        args.server,
        args.host,
        args.port,
        behind_proxy=args.behind_proxy,
        access_log=os.environ.get("LOG_FORMAT") != "json",
    )
    os.execv(argv[0], argv)  # noqa: S606 (our own interpreter and arguments)


if __name__ == "__main__":
    main()
