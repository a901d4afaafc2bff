"""Redis Stream plumbing shared by workers, commands and stats: groups, key names (clients:
infra/redis_client.py)."""

from __future__ import annotations

import redis

from broker.registry import Subscriber
from contract import redis_keys
from contract.events import stream_key


def dead_stream(subscriber: str) -> str:
    """Where a subscriber's dead letters are appended (the database keeps them for redrive)."""
    return redis_keys.key("dead", subscriber)


def attempts_key(subscriber: str) -> str:
    """Hash of failed attempts per pending entry ("topic|stream id"); survives worker crashes."""
    return redis_keys.key("sub", subscriber, "attempts")


def worker_key(subscriber: str, consumer: str = "*") -> str:
    """A live worker's heartbeat (expires when the worker stops refreshing it)."""
    return redis_keys.key("sub", subscriber, "worker", consumer)


def workers_seen_key() -> str:
    """Hash: subscriber -> time.time() of its latest worker heartbeat (/readyz, ops/health.py)."""
    return redis_keys.key("workers", "seen")


def ensure_group(client: redis.Redis, sub: Subscriber, topic: str, start: str) -> bool:
    """Create the subscriber's group on the topic at stream id ``start`` if missing; True if it
    was created. Where a group starts is broker/groups.py's decision."""
    try:
        client.xgroup_create(stream_key(topic), sub.group, id=start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise
    return True


def has_group(client: redis.Redis, topic: str, group: str) -> bool:
    try:
        groups = client.xinfo_groups(stream_key(topic))
    except redis.ResponseError:  # no such stream
        return False
    return any(decode(g["name"]) == group for g in groups)


def decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def next_id(stream_id: str) -> str:
    """The smallest stream id greater than ``stream_id``."""
    ms, seq = stream_id.split("-")
    return f"{ms}-{int(seq) + 1}"


def compare_ids(a: str, b: str) -> int:
    ta = tuple(int(x) for x in a.split("-"))
    tb = tuple(int(x) for x in b.split("-"))
    return (ta > tb) - (ta < tb)


# Counts stream entries server-side: redis-py parsing every entry (ids and fields) of a large
# backlog in Python took about a second per 100,000 entries, in the worker's own process (the
# dashboard computes lags there), where holding the GIL starved the worker's loop. One call
# counts at most ARGV[3] entries, so Redis is never blocked for long; the caller loops.
_COUNT_SCRIPT = """
local n, start, page, limit = 0, ARGV[1], tonumber(ARGV[4]), tonumber(ARGV[3])
while n < limit do
  local entries = redis.call('XRANGE', KEYS[1], start, ARGV[2], 'COUNT', page)
  n = n + #entries
  if #entries < page then return {n, ''} end
  start = '(' .. entries[#entries][1]
end
return {n, start}
"""


def count_range(
    client: redis.Redis, key: str, start: str, end: str = "+", page: int = 10_000
) -> int:
    """Entries from ``start`` to ``end`` (XRANGE bounds; "(" excludes), counted in Redis in
    slices of at most ``page`` entries."""
    total = 0
    while True:
        counted, start = client.eval(_COUNT_SCRIPT, 1, key, start, end, page, 1000)
        total += int(counted)
        start = decode(start)
        if not start:
            return total
