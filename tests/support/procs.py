"""Real server processes for tests: the ASGI server (daphne or uvicorn), the relay, the workers,
and helpers to reach them.

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
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection

from infra.embedded_redis import free_port
from realtime import servers
from tests.support import contract

BASE_DIR = Path(settings.BASE_DIR)
CHILD_APPNAME = "parley-test-child"


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
        # libpq names their PostgreSQL sessions, so a test can end theirs and not its own.
        "PGAPPNAME": CHILD_APPNAME,
        **extra,
    }
    return env


class Process:
    """A child process with its output in a log file (printed if a test fails to start it).

    ``start()`` returns once the process is ready: when its log shows ``ready_line``, if set.
    """

    ready_line: str | None = None

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> Process:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=BASE_DIR, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.tail()}")
            time.sleep(0.05)
        return self

    def ready(self) -> bool:
        return self.ready_line is None or self.ready_line in self.output()

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

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.output()[-chars:]
        except FileNotFoundError:
            return "(no log)"


class Server(Process):
    """The ASGI application served by ``server`` (realtime.servers: daphne or uvicorn)."""

    def __init__(
        self,
        log_dir: Path,
        *,
        redis_url: str | None = None,
        name: str | None = None,
        port: int | None = None,
        server: str = "daphne",
        **extra_env: str,
    ):
        self.port = port or free_port()
        self.server = server
        args = servers.command(server, "127.0.0.1", self.port)
        super().__init__(name or server, args, server_env(redis_url, **extra_env), log_dir)

    def ready(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
        ):
            return True
        return False

    def ws_url(self, slug: str, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws/rooms/{slug}/" + (f"?{query}" if query else "")


Daphne = Server  # the default server


class Relay(Process):
    ready_line = "relay started"

    def __init__(self, log_dir: Path, *, redis_url: str | None = None, **extra_env: str):
        args = [sys.executable, str(BASE_DIR / "manage.py"), "relay"]
        super().__init__("relay", args, server_env(redis_url, **extra_env), log_dir)


class Worker(Process):
    """``manage.py consume NAME...``: subscriber workers."""

    ready_line = "consuming:"  # printed once every named subscriber's groups exist

    def __init__(
        self, log_dir: Path, names: list[str], *, redis_url: str | None = None, **extra_env: str
    ):
        args = [sys.executable, str(BASE_DIR / "manage.py"), "consume", *names]
        name = "worker-" + "-".join(names)
        index = 1
        while (log_dir / f"{name}-{index}.log").exists():
            index += 1
        super().__init__(f"{name}-{index}", args, server_env(redis_url, **extra_env), log_dir)


class Processes:
    """The server processes of one test: started through it, all stopped by ``stop_all()``.

    ``explain()`` wraps a test body so that a failure carries the tail of every process log.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Process] = []

    def start(self, process: Process) -> Process:
        self.started.append(process)
        process.start()
        return process

    def daphne(self, **kwargs) -> Server:
        """The ASGI server process (daphne unless ``server="uvicorn"``)."""
        return self.start(Server(self.log_dir, **kwargs))

    def relay(self, **kwargs) -> Relay:
        return self.start(Relay(self.log_dir, **kwargs))

    def worker(self, *names: str, **kwargs) -> Worker:
        return self.start(Worker(self.log_dir, list(names), **kwargs))

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()

    def logs(self, chars: int = 3000) -> str:
        return "".join(
            f"\n----- {p.name} (exit {p.proc.poll() if p.proc else None}) -----\n{p.tail(chars)}"
            for p in self.started
        )

    @contextlib.contextmanager
    def explain(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            raise AssertionError(f"{type(exc).__name__}: {exc}{self.logs()}") from exc


def children_of(pid: int) -> dict[int, str]:
    """Direct children of ``pid``: {pid: command line}."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # The command name (2nd field) is in parentheses and may hold spaces.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out[int(entry.name)] = cmdline
    return out


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited


def wait_until(condition: Callable[[], object], timeout: float = 20, what: str = "") -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what or condition}")
        time.sleep(0.05)


async def async_wait_until(condition, timeout: float = 20, what: str = "") -> None:
    """``wait_until`` for async code; ``condition`` is an async callable."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what or condition}")
        await asyncio.sleep(0.05)


class RemoteSocket:
    """A websockets-library client of a real server process.

    Every ``message.new`` payload that any read comes across is kept in ``received``, in arrival
    order, so a test can count exactly what the socket was sent, duplicates included.
    """

    def __init__(self, ws, path: str) -> None:
        self.ws = ws
        self.path = path  # frames are checked against docs/asyncapi.yaml (tests.support.contract)
        self.received: list[dict] = []

    @classmethod
    async def open(cls, url: str, cookie: str | None, **connect) -> tuple[RemoteSocket, dict]:
        import websockets

        parts = urlsplit(url)
        contract.check_query(parts.path, parts.query)
        headers = {"Cookie": cookie} if cookie else {}
        ws = await websockets.connect(url, additional_headers=headers, **connect)
        socket_ = cls(ws, parts.path)
        return socket_, await socket_.recv()

    async def recv(self, timeout: float = 10) -> dict:
        import websockets

        try:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        except websockets.ConnectionClosed as closed:
            contract.check_close(self.path, closed.rcvd.code if closed.rcvd else None)
            raise
        contract.check_frame(self.path, "server", frame)
        if frame.get("type") == "message.new":
            self.received.append(frame["message"])
        return frame

    @property
    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.received]

    async def post(self, body: str, timeout: float = 10) -> dict:
        """Send message.send; return the acked message (fail on an error frame)."""
        client_id = str(uuid.uuid4())
        await self.send({"type": "message.send", "body": body, "client_id": client_id})
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - time.monotonic()))
            if frame.get("client_id") == client_id:
                assert frame["type"] == "message.ack", f"post {body!r} refused: {frame}"
                return frame["message"]

    async def wait_seq(self, seq: int, timeout: float = 20) -> None:
        """Read until a message with seq >= ``seq`` has been received."""
        deadline = time.monotonic() + timeout
        while not self.received or max(self.seqs) < seq:
            await self.recv(max(0.01, deadline - time.monotonic()))

    async def round_trip(self, timeout: float = 10) -> None:
        """Ping and read up to the pong: whatever the server sent before it has arrived."""
        await self.send({"type": "ping"})
        deadline = time.monotonic() + timeout
        while (await self.recv(max(0.01, deadline - time.monotonic())))["type"] != "pong":
            pass

    async def wait_closed(self, timeout: float = 10) -> None:
        """Read until the server side goes away (frames read meanwhile are kept)."""
        import websockets

        deadline = time.monotonic() + timeout
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await self.recv(max(0.01, deadline - time.monotonic()))

    async def send(self, frame: dict) -> None:
        contract.check_frame(self.path, "client", frame)
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
