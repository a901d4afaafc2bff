"""Real server processes for tests: daphne, the relay, and helpers to reach them.

They share the test database (its URL is handed down in DATABASE_URL) and, unless a test gives
them a private Redis, the suite's Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from config.embedded_redis import free_port

BASE_DIR = Path(settings.BASE_DIR)


def database_url() -> str:
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def server_env(redis_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url or settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    return env


class Process:
    """A child process with its output in a log file (printed if a test fails to start it)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=BASE_DIR, stdout=self.log, stderr=subprocess.STDOUT
        )
        return self

    def stop(self, sig_kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if sig_kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class Daphne(Process):
    def __init__(self, log_dir: Path, *, redis_url: str | None = None, name: str = "daphne"):
        self.port = free_port()
        args = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "config.asgi:application",
        ]
        super().__init__(name, args, server_env(redis_url), log_dir)

    def start(self, timeout: float = 30) -> Daphne:
        super().start()
        deadline = time.monotonic() + timeout
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def ws_url(self, slug: str, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws/rooms/{slug}/" + (f"?{query}" if query else "")


class Relay(Process):
    def __init__(self, log_dir: Path, *, redis_url: str | None = None):
        args = [sys.executable, str(BASE_DIR / "manage.py"), "relay"]
        super().__init__("relay", args, server_env(redis_url), log_dir)


class RemoteSocket:
    """A websockets-library client of a real server process."""

    def __init__(self, ws) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, url: str, cookie: str) -> tuple[RemoteSocket, dict]:
        import websockets

        ws = await websockets.connect(url, additional_headers={"Cookie": cookie})
        socket_ = cls(ws)
        return socket_, await socket_.recv()

    async def recv(self, timeout: float = 10) -> dict:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def messages(self, until_seq: int, timeout: float = 20) -> list[dict]:
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while not out or out[-1]["seq"] < until_seq:
            frame = await self.recv(max(0.01, deadline - time.monotonic()))
            if frame["type"] == "message.new":
                out.append(frame["message"])
        return out

    async def close(self) -> None:
        await self.ws.close()
