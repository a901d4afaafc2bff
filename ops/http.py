"""``/healthz``, ``/readyz`` and ``/metrics``: answered before Django (realtime/application.py).

Why not Django views: a load balancer probes by IP address, which ALLOWED_HOSTS rightly refuses
(400), and Django's middleware (sessions, CSRF, whitenoise's sync-only middleware: a hop to the
sync thread) is work a probe every second does not need. Here ``/healthz`` touches nothing;
``/readyz`` and ``/metrics`` make one trip to the database thread pool (infra.db).

Access to ``/metrics`` (it names subscribers and shows traffic): a request is served when its
client address is in ``PARLEY_METRICS["ALLOWED_NETWORKS"]`` (default: loopback only) or it
carries ``Authorization: Bearer <PARLEY_METRICS["TOKEN"]>`` (when a token is set); otherwise
403. Behind a proxy the client address is the proxy's: use the token, or list the proxy.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from functools import cache

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST

from infra.db import db
from ops import health, scrape

PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


async def serve(scope: dict, receive, send) -> None:
    """Answer one of ``PATHS`` (the caller checked ``scope["path"]``); HEAD gets the headers."""
    status, content_type, body = await _answer(scope)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


async def _answer(scope: dict) -> tuple[int, bytes, bytes]:
    if scope["method"] not in ("GET", "HEAD"):
        return _json(405, {"error": "method_not_allowed", "detail": "use GET"})
    path = scope["path"]
    if path == "/healthz":
        return _json(200, {"status": "alive", "pid": os.getpid()})
    if path == "/readyz":
        result = await db(health.readiness)()
        return _json(200 if result["ready"] else 503, result)
    if not metrics_allowed(scope):
        return _json(
            403, {"error": "forbidden", "detail": "metrics: address not allowed, no token"}
        )
    return 200, CONTENT_TYPE_LATEST.encode(), await db(scrape.render)()


def metrics_allowed(scope: dict) -> bool:
    token = settings.PARLEY_METRICS["TOKEN"]
    if token:
        presented = dict(scope.get("headers", [])).get(b"authorization", b"")
        if hmac.compare_digest(presented, b"Bearer " + token.encode()):
            return True
    client = scope.get("client")
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    return any(
        address in net for net in _networks(tuple(settings.PARLEY_METRICS["ALLOWED_NETWORKS"]))
    )


@cache
def _networks(specs: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(spec, strict=False) for spec in specs]


def _json(status: int, payload: dict) -> tuple[int, bytes, bytes]:
    return status, b"application/json", json.dumps(payload).encode()
