"""``manage.py serve``: the whole stack in one command (what ``make run`` runs), supervised.

Starts the ASGI server (daphne; ``--server uvicorn`` or ``SERVER=uvicorn make run`` for the
option), the outbox relay and the subscribers' workers as child processes sharing this
process' Redis (the embedded one when REDIS_URL is unset: it lives exactly as long as this
command). A child that exits is restarted with back-off (ops/supervisor.py); serve itself
stops, and stops them all, only on Ctrl-C or SIGTERM.

``--only web|relay|workers`` (repeatable) runs part of the stack, e.g. one web process per
core on one host and the relay and workers on another (they then need a shared REDIS_URL).
Their metrics go to one PROMETHEUS_MULTIPROC_DIR (set up by manage.py before Django starts:
ops/multiproc.py), so ``/metrics`` on the server reports every process of this serve.
"""

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ops.supervisor import Supervisor
from realtime import servers

log = logging.getLogger("parley.serve")

PARTS = ("web", "relay", "workers")


class Command(BaseCommand):
    help = "Serve Parley: the ASGI server plus the background workers, until Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--server",
            choices=servers.SERVERS,
            default=os.environ.get("SERVER") or servers.DEFAULT,
            help="the ASGI server (default daphne; env SERVER)",
        )
        parser.add_argument(
            "--only",
            action="append",
            choices=PARTS,
            help="run only this part (repeatable; default: all of them)",
        )
        parser.add_argument(
            "--subscribers",
            default="",
            help="comma-separated subscribers for the workers (default: every registered one)",
        )

    def handle(self, *args, host: str, port: int, server: str, **options) -> None:
        parts = set(options["only"] or PARTS)
        names = [n for n in options["subscribers"].split(",") if n] or list(
            settings.PARLEY_SUBSCRIBERS
        )
        unknown = [n for n in names if n not in settings.PARLEY_SUBSCRIBERS]
        if unknown:
            raise CommandError(f"unknown subscribers: {', '.join(unknown)}")
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        commands = {}
        if "web" in parts:
            # daphne's access log is plain text on stdout, outside logging: a line per
            # request (every probe) that a JSON log shipper cannot parse.
            access_log = settings.LOG_FORMAT != "json"
            commands[server] = servers.command(server, host, port, access_log=access_log)
        if "relay" in parts:
            commands["relay"] = [sys.executable, manage, "relay"]
        if "workers" in parts and names:
            commands["workers"] = [sys.executable, manage, "consume", *names]
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        env = {**os.environ, "REDIS_URL": settings.REDIS_URL}
        # One server and no proxy to send clients elsewhere: on SIGTERM it need not keep
        # serving while /readyz is 503 (ops.drain); set it to run serve behind a balancer.
        env.setdefault("PARLEY_DRAIN_SECONDS", "0")
        if "web" in parts:
            log.info(
                "Parley on http://%s:%d/  (%s; Redis: %s)", host, port, server, env["REDIS_URL"]
            )
        log.info("serving %s; Ctrl-C stops everything.", ", ".join(commands))
        Supervisor(commands, env).run(stop)
