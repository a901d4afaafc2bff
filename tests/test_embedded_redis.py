"""The project-managed Redis servers: the embedded default and private test instances."""

from __future__ import annotations

import os
import subprocess
import sys

import redis

from infra import embedded_redis
from infra.embedded_redis import RedisServer


def test_private_server_stops_and_restarts_on_the_same_socket(tmp_path):
    server = RedisServer(socket_path=tmp_path / "r.sock").start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        server.stop()
        assert not server.ping()
        server.start()
        assert client.get("k") is None  # restarted with empty memory, like production
        assert client.ping()
    finally:
        server.stop()


def test_private_server_on_a_tcp_port():
    server = RedisServer(port=embedded_redis.free_port()).start()
    try:
        assert redis.Redis.from_url(server.url).ping()
    finally:
        server.kill()
    assert not server.ping()


def test_ensure_default_reuses_a_running_server_and_exports_its_url(tmp_path, monkeypatch):
    monkeypatch.setenv("PARLEY_EMBEDDED_REDIS_DIR", str(tmp_path))
    owner = RedisServer(socket_path=embedded_redis.default_socket_path()).start()
    try:
        monkeypatch.delenv("REDIS_URL", raising=False)
        assert embedded_redis.ensure_default() == owner.url
        assert os.environ["REDIS_URL"] == owner.url
    finally:
        owner.stop()


def test_embedded_server_lives_and_dies_with_the_process_that_started_it(tmp_path):
    env = {**os.environ, "PARLEY_EMBEDDED_REDIS_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    script = (
        "from infra import embedded_redis; import redis;"
        "url = embedded_redis.ensure_default(); print(url);"
        "assert redis.Redis.from_url(url).ping()"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=embedded_redis.BASE_DIR,
        timeout=30,
    )
    assert out.stdout.strip().startswith("unix://")
    assert not RedisServer(socket_path=tmp_path / "redis.sock").ping()
