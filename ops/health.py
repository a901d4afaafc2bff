"""Readiness: can this process serve, and is the machinery behind it running?

``readiness()`` costs one indexed query and one Redis round trip (a pipeline), so a load balancer
may probe it every second. Its checks:

- ``database``: the query below answered.
- ``redis``: the pipeline answered.
- ``relay``: the relay's heartbeat (``relay_heartbeat_key()``, written after every sweep) is
  younger than ``PARLEY_HEALTH["RELAY_STALE_SECONDS"]``.
- ``outbox``: the oldest unpublished outbox row is younger than ``OUTBOX_MAX_AGE_SECONDS``
  (one row read by the partial index ``outbox_pending``).
- ``draining``: this process has not been told to stop (``start_draining``: SIGTERM, ops.drain).
  A draining process answers 503 at once, touching neither the database nor Redis.
- ``subscribers``: every subscriber named in ``PARLEY_HEALTH["SUBSCRIBERS"]`` (default: all
  registered) has a worker whose heartbeat (``broker.streams.workers_seen_key``) is younger than
  ``WORKER_STALE_SECONDS``.

Heartbeats are wall-clock times written by other processes, possibly other hosts: their clocks
must agree (NTP) to within the thresholds.
"""

from __future__ import annotations

import time
from typing import TypedDict

from django.conf import settings

from broker.streams import workers_seen_key
from contract import redis_keys
from database import sql
from infra.redis_client import get_redis


def relay_heartbeat_key() -> str:
    """time.time() of the relay's last sweep."""
    return redis_keys.key("relay", "heartbeat")


_draining = False  # per process: set once, by start_draining(), never cleared


def start_draining() -> None:
    """From now on this process is not ready (``/readyz`` 503): it is shutting down."""
    global _draining
    _draining = True


def draining() -> bool:
    return _draining


class Check(TypedDict, total=False):
    ok: bool
    error: str
    age_seconds: float | None
    missing: list[str]


class Readiness(TypedDict):
    ready: bool
    checks: dict[str, Check]


def _age(now: float, then: bytes | str | None) -> float | None:
    return None if then is None else round(max(0.0, now - float(then)), 3)


def oldest_pending_age(now: float) -> float | None:
    """Seconds since the oldest unpublished outbox row was written (None: nothing pending)."""
    created = sql.oldest_pending_created_at()
    if created is None:
        return None
    return round(max(0.0, now - created.timestamp()), 3)


def readiness() -> Readiness:
    """Run every check (see the module docstring); never raises."""
    if _draining:
        return {"ready": False, "checks": {"draining": {"ok": False}}}
    conf = settings.PARLEY_HEALTH
    now = time.time()
    checks: dict[str, Check] = {"draining": {"ok": True}}
    try:
        age = oldest_pending_age(now)
    except Exception as exc:  # any failure of the database is "not ready", with its reason
        checks["database"] = {"ok": False, "error": repr(exc)}
        checks["outbox"] = {"ok": False, "error": "database unreachable"}
    else:
        checks["database"] = {"ok": True}
        checks["outbox"] = {
            "ok": age is None or age < conf["OUTBOX_MAX_AGE_SECONDS"],
            "age_seconds": age,
        }
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.get(relay_heartbeat_key())
        pipe.hgetall(workers_seen_key())
        relay_beat, seen = pipe.execute()
    except Exception as exc:
        checks["redis"] = {"ok": False, "error": repr(exc)}
        checks["relay"] = checks["subscribers"] = {"ok": False, "error": "redis unreachable"}
    else:
        checks["redis"] = {"ok": True}
        relay_age = _age(now, relay_beat)
        checks["relay"] = {
            "ok": relay_age is not None and relay_age < conf["RELAY_STALE_SECONDS"],
            "age_seconds": relay_age,
        }
        seen = {k.decode() if isinstance(k, bytes) else k: v for k, v in seen.items()}
        stale = conf["WORKER_STALE_SECONDS"]
        missing = [
            name
            for name in required_subscribers()
            if (age := _age(now, seen.get(name))) is None or age >= stale
        ]
        checks["subscribers"] = {"ok": not missing, "missing": missing}
    return {"ready": all(c["ok"] for c in checks.values()), "checks": checks}


def required_subscribers() -> list[str]:
    names = settings.PARLEY_HEALTH["SUBSCRIBERS"]
    return list(settings.PARLEY_SUBSCRIBERS) if names is None else list(names)


def relay_heartbeat(client) -> None:
    """Written by the relay after each sweep (expires, so a dead relay's beat vanishes)."""
    client.set(relay_heartbeat_key(), repr(time.time()), ex=600)
