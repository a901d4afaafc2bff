"""Starting and stopping the servers under test, loopback only.

:class:`ParleyStack` starts Parley the documented way: a private Redis
(``infra.embedded_redis.RedisServer``, on a unix socket in a temp dir) named by ``REDIS_URL``, a
database named by ``DATABASE_URL`` (a temp SQLite file, or a PostgreSQL database of the run's own,
created and dropped here), ``manage.py migrate``, then daphne (one or more processes), the outbox
relay (``manage.py relay``) and the subscribers' workers (``manage.py consume analytics`` and
``manage.py consume mentions``, separate processes so analytics can be stopped alone).

Users, tokens and the room are made through the product's own interfaces: users sign up on
``/accounts/signup/``; the room owner's token comes from ``manage.py token create``, the others'
from ``POST /api/tokens/`` with their session; the room is created with ``POST /api/rooms/`` and
joined with ``POST /api/rooms/<slug>/join/`` (bench/browser.py). The storms' users, one per
socket, are the exception: made in one ``manage.py shell`` (``create_socket_users``).

:class:`RawStack` starts ``bench/raw_server.py``. Every process is stopped in ``close()``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.browser import Browser, expect

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Stdlib only (no Django): the private Redis, free ports, children that die with this process.
from infra.embedded_redis import RedisServer, _die_with_parent, free_port  # noqa: E402
from realtime import servers  # noqa: E402


def wait_port(port: int, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {HOST}:{port} within {timeout}s")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def log_problems(paths: list[Path]) -> dict[str, Any]:
    """Warnings, errors and tracebacks in server logs (access-log lines are skipped)."""
    pattern = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback|Exception)\b")
    lines: list[str] = []
    for path in paths:
        with contextlib.suppress(OSError):
            lines += [
                f"{path.name}: {ln}"
                for ln in path.read_text(errors="replace").splitlines()
                if pattern.search(ln)
            ]
    return {"count": len(lines), "first": lines[:20]}


class Stack:
    """Server processes started by the harness; ``close()`` stops them all."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.name = name
        self.log_dir = log_dir
        self.tmp = Path(tempfile.mkdtemp(prefix=f"parley-bench-{name}-"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: list[Path] = []
        self._files: list[Any] = []
        self._cleanups: list[Any] = []

    @property
    def processes(self) -> dict[str, int]:
        """Name -> pid of every live server process (what CPU and RSS are measured on)."""
        return {n: p.pid for n, p in self.procs.items() if p.poll() is None}

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log_path = self.log_dir / f"{self.name}-{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self._files.append(log)
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self.procs[name] = proc
        if log_path not in self.logs:
            self.logs.append(log_path)
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop_process(proc)

    def close(self) -> None:
        for name in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(name)
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        for f in self._files:
            f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RawStack(Stack):
    """bench/raw_server.py: a bare ``websockets`` broadcast server, the limit."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__("raw", log_dir)
        self.port = free_port()
        proc = self.spawn(
            "raw",
            [sys.executable, str(ROOT / "bench" / "raw_server.py"), "--port", str(self.port)],
            {**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_port(self.port, proc, 30, "raw server")
        self.tokens: list[str | None] = [None]

    def ws_url(self, room: str, server: int = 0) -> str:
        return f"ws://{HOST}:{self.port}/"


_SOCKET_USERS = """
from django.contrib.auth import get_user_model
from django.db import transaction
from accounts.tokens import create_token
with transaction.atomic():
    for i in range(%d):
        user = get_user_model().objects.create_user("%s-%%d" %% i)
        print("token", create_token(user=user, name="bench")[1])
"""


class ParleyStack(Stack):
    def __init__(
        self,
        name: str,
        log_dir: Path,
        *,
        database: str = "sqlite",
        processes: int = 1,
        server: str = servers.DEFAULT,
    ):
        super().__init__(name, log_dir)
        self.server = server
        try:
            self._start(database, processes)
        except BaseException:
            self.close()
            raise

    def _start(self, database: str, processes: int) -> None:
        self.redis = RedisServer(socket_path=self.tmp / "redis.sock").start()
        self._cleanups.append(self.redis.stop)
        self.database = database
        if database == "postgres":
            self.pg_name = f"parley_bench_{os.getpid()}_{secrets.token_hex(3)}"
            self._pg_admin(f'CREATE DATABASE "{self.pg_name}"')
            self._cleanups.append(
                lambda: self._pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            )
            db_url = f"postgres://postgres@127.0.0.1:5432/{self.pg_name}"
        else:
            self.sqlite_path = self.tmp / "db.sqlite3"
            db_url = f"sqlite:///{self.sqlite_path}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DATABASE_URL": db_url,
            "REDIS_URL": self.redis.url,
            "DEBUG": "false",
            "PYTHONUNBUFFERED": "1",
            # The harness floods on purpose: the per-user limits would refuse the load.
            "PARLEY_RATE_LIMIT_MESSAGES": "100000000",
            "PARLEY_API_WRITES_PER_MINUTE": "100000000",
            "PARLEY_RATE_LIMIT_FRAMES": "100000000",
            "PARLEY_MAX_SOCKETS_PER_USER": "100000000",
            "PARLEY_MAX_SUBSCRIPTIONS": "100000000",  # the mux scenario's socket follows 1,000
            "PARLEY_SIGNUPS_PER_HOUR": "100000000",  # it signs its users up from one address
        }
        self.manage("migrate", "--noinput", timeout=300)
        self.ports: list[int] = []
        for i in range(processes):
            self.add_server(i)
        self.spawn("relay", [sys.executable, "manage.py", "relay"], self.env)
        self.start_consumer("analytics")
        self.start_consumer("mentions")
        self.base = f"http://{HOST}:{self.ports[0]}"

    # --- processes ------------------------------------------------------------------------------
    def manage(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def add_server(self, index: int) -> None:
        port = free_port()
        name = f"{self.server}{index}"
        proc = self.spawn(name, servers.command(self.server, HOST, port), self.env)
        wait_port(port, proc, 60, name)
        self.ports.append(port)

    def start_consumer(self, subscriber: str) -> None:
        self.spawn(
            f"consume-{subscriber}", [sys.executable, "manage.py", "consume", subscriber], self.env
        )

    @property
    def processes(self) -> dict[str, int]:
        procs = super().processes
        procs["redis"] = self.redis.proc.pid
        procs.update(self.pg_backends())
        return procs

    def pg_backends(self) -> dict[str, int]:
        """PostgreSQL server processes serving this run's database (their CPU counts too)."""
        if self.database != "postgres":
            return {}
        rows = self._pg_admin(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s ORDER BY pid", (self.pg_name,)
        )
        return {f"postgres-{pid}": pid for (pid,) in rows}

    def _pg_admin(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Read the run's database directly (for the catch-up check)."""
        if self.database == "postgres":
            import psycopg

            url = f"postgres://postgres@127.0.0.1:5432/{self.pg_name}"
            with psycopg.connect(url, connect_timeout=5) as conn:
                return conn.execute(query.replace("?", "%s"), params).fetchall()
        with contextlib.closing(sqlite3.connect(self.sqlite_path, timeout=20)) as conn:
            return conn.execute(query, params).fetchall()

    def redis_client(self):
        from infra.redis_client import connect

        return connect(self.redis.url, socket_timeout=10)

    # --- users, tokens, rooms through the product's interfaces ---------------------------------
    def create_users(self, count: int, prefix: str = "bench") -> list[str]:
        """Sign up ``count`` users; return one API token each (the first from the CLI)."""
        names = [f"{prefix}-{i}" for i in range(count)]
        password = secrets.token_urlsafe(16)

        def signup(name: str) -> str | None:
            browser = Browser(self.base)
            expect(*browser.request("GET", "/accounts/signup/"), (200,), "GET signup")
            form = {
                "csrfmiddlewaretoken": browser.cookie("csrftoken"),
                "username": name,
                "password1": password,
                "password2": password,
            }
            status, body = browser.request("POST", "/accounts/signup/", form, form=True)
            if not browser.cookie("sessionid"):
                raise RuntimeError(f"signup of {name} failed: HTTP {status} {str(body)[:300]}")
            if name == names[0]:
                return None  # its token comes from the operator's command below
            created = expect(
                *browser.request("POST", "/api/tokens/", {"name": "bench"}), (201,), "token"
            )
            return created["token"]

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            tokens = list(pool.map(signup, names))
        out = self.manage("token", "create", names[0], "--name", "bench")
        tokens[0] = out.strip().splitlines()[-1].strip()
        self.users = names
        self.tokens = tokens
        return tokens

    def create_socket_users(self, count: int, prefix: str) -> list[str]:
        """``count`` more users, ``<prefix>-0`` ..., with one API token each: for the storms,
        where every socket is a user of its own (as after a deploy, so each connect records
        its own presence). Made in one ``manage.py shell`` with the product's ``create_user``
        and ``create_token`` and no password: a sign-up each would hash 1,000 passwords."""
        out = self.manage("shell", "-c", _SOCKET_USERS % (count, prefix), timeout=300)
        tokens = [line.split()[1] for line in out.splitlines() if line.startswith("token ")]
        if len(tokens) != count:
            raise RuntimeError(f"made {len(tokens)} socket users of {count}:\n{out[-1000:]}")
        return tokens

    def create_room(self, slug: str, members: list[str]) -> dict:
        """``POST /api/rooms/`` with the first token; every other token joins."""
        browser = Browser(self.base)
        room = expect(
            *browser.request(
                "POST",
                "/api/rooms/",
                {"slug": slug, "title": f"bench {slug}", "is_private": False},
                token=members[0],
            ),
            (201,),
            "create room",
        )
        for token in members[1:]:
            expect(
                *browser.request("POST", f"/api/rooms/{slug}/join/", {}, token=token),
                (200, 201, 204),
                "join room",
            )
        return room

    def ws_url(self, room: str, server: int = 0) -> str:
        return f"ws://{HOST}:{self.ports[server]}/ws/rooms/{room}/"

    def messages_url(self, room: str, server: int = 0) -> str:
        return f"http://{HOST}:{self.ports[server]}/api/rooms/{room}/messages/"
