"""``manage.py serve``: the whole stack in one command (what ``make run`` runs).

Starts the ASGI server (daphne; ``--server uvicorn`` or ``SERVER=uvicorn make run`` for the
option), the outbox relay and the subscribers' workers as child processes sharing this
process' Redis (the embedded one when REDIS_URL is unset: it lives exactly as long as this
command), and stops them all on Ctrl-C or SIGTERM.
"""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from config import servers


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

    def handle(self, *args, host: str, port: int, server: str, **options) -> None:
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        env = {**os.environ, "REDIS_URL": settings.REDIS_URL}
        commands = {
            server: servers.command(server, host, port),
            "relay": [sys.executable, manage, "relay"],
            "subscribers": [sys.executable, manage, "consume", *settings.PARLEY_SUBSCRIBERS],
        }
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        procs = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
        self.stdout.write(
            f"Parley on http://{host}:{port}/  ({server}; Redis: {settings.REDIS_URL})"
        )
        self.stdout.write("Ctrl-C stops everything.")
        failed = None
        while not stop.wait(0.5):
            failed = next((n for n, p in procs.items() if p.poll() is not None), None)
            if failed:
                self.stderr.write(f"{failed} exited with {procs[failed].returncode}; stopping")
                break
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if failed:
            sys.exit(1)
