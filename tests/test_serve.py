"""The `make run` path: migrate, seed_demo, then `manage.py serve` with no REDIS_URL (so on its
own embedded Redis) until Ctrl-C, which must stop everything it started."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from infra.embedded_redis import RedisServer, free_port
from tests.support.procs import BASE_DIR, alive, children_of, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

MANAGE = str(BASE_DIR / "manage.py")


@pytest.fixture
def redis_dir():
    # Short: the socket path inside must fit AF_UNIX's limit.
    path = Path(tempfile.mkdtemp(prefix="pserve-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_run_env(tmp_path, redis_dir):
    """The environment of a developer's shell: no REDIS_URL, no settings module chosen."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "DJANGO_SETTINGS_MODULE", "DATABASE_URL"}
        and not k.startswith("PYTEST")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        PARLEY_EMBEDDED_REDIS_DIR=str(redis_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


# Straight to the local server, whatever proxy the environment names.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str) -> int | None:
    try:
        with _opener.open(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@pytest.mark.parametrize(
    ("ctrl_c", "server"),
    [("process", "daphne"), ("process_group", "daphne"), ("process_group", "uvicorn")],
)
def test_serve_runs_the_stack_and_ctrl_c_stops_all_of_it(
    tmp_path, redis_dir, make_run_env, ctrl_c, server
):
    """``make run`` (daphne) and ``SERVER=uvicorn make run``."""
    make_run_env["SERVER"] = server
    redis = RedisServer(socket_path=redis_dir / "redis.sock")  # where serve's settings put it
    assert len(redis.socket_path) < 100
    for command in ("migrate", "seed_demo"):
        done = subprocess.run(
            [sys.executable, MANAGE, command, *(["--noinput"] if command == "migrate" else [])],
            env=make_run_env,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"

    port = free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        # A session of its own, like a terminal's foreground job: Ctrl-C signals the group.
        serve = subprocess.Popen(
            [sys.executable, MANAGE, "serve", "--port", str(port)],
            env=make_run_env,
            cwd=BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def explain() -> str:
            return f"\n----- serve.log\n{log_path.read_text(errors='replace')[-3000:]}"

        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert serve.poll() is None, f"serve exited with {serve.returncode}{explain()}"
            return http_status(f"{base}/accounts/login/") == 200

        wait_until(ready, timeout=60, what=f"the login page answers{explain()}")
        assert http_status(f"{base}/static/parley/client.js") == 200, explain()

        children = children_of(serve.pid)
        names = " | ".join(children.values())
        assert all(n in names for n in (server, "relay", "consume", "redis-server")), names
        assert redis.ping(), f"no embedded Redis at {redis.socket_path}{explain()}"

        if ctrl_c == "process":
            serve.send_signal(signal.SIGINT)
        else:
            os.killpg(serve.pid, signal.SIGINT)
        try:
            returncode = serve.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running 15 s after SIGINT{explain()}")
        assert returncode == 0, explain()
        assert not redis.ping(), f"the embedded Redis still answers{explain()}"
        left = {pid: cmd for pid, cmd in children.items() if alive(pid)}
        assert not left, f"children still running: {left}{explain()}"
    finally:
        # Whatever is left of the session this test started (nothing, when it passes).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGKILL)
        if serve.poll() is None:
            serve.wait()
