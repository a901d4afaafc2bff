"""infra/redis_client.py is the only module that makes Redis clients (REDIS_URL, Sentinel,
the embedded Redis and each client's options in one place)."""

from __future__ import annotations

import re
from pathlib import Path

from infra import redis_client

BASE_DIR = Path(__file__).resolve().parent.parent
# A client, a pool or a Sentinel manager being made: what only the factory may do.
MAKES_A_CLIENT = re.compile(r"(Redis|Sentinel|ConnectionPool)\(|\.from_url\(|\.master_for\(")
SKIPPED = {".venv", "tests", "node_modules", "migrations", "var"}


def test_only_the_factory_makes_redis_clients():
    factory = Path(redis_client.__file__).resolve()
    offenders = [
        f"{path.relative_to(BASE_DIR)}:{n}: {line.strip()}"
        for path in BASE_DIR.rglob("*.py")
        if path != factory and not SKIPPED & set(path.relative_to(BASE_DIR).parts)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if MAKES_A_CLIENT.search(line)
    ]
    assert offenders == []


def test_subscriber_connections_have_no_read_timeout():
    """An idle subscription reads nothing for hours (tests/chat/test_idle.py on a server)."""
    host = redis_client.channel_layer_host("redis://127.0.0.1:6379/0")
    assert host["socket_timeout"] is None and host["socket_keepalive"] is True
    unix = redis_client.channel_layer_host("unix:///tmp/r.sock?db=0")
    assert unix["socket_timeout"] is None and "socket_keepalive" not in unix
