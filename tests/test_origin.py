"""realtime.origin: a WebSocket handshake's Origin must be the site's own origin (scheme, host
and port) or one of CSRF_TRUSTED_ORIGINS; the host alone is not enough."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from realtime.origin import BrowserOriginCheck

check = BrowserOriginCheck()


def scope(origin: str | None, host: str | None = "localhost:8000", scheme="ws", **headers):
    raw = [(b"cookie", b"x=1")]
    if host is not None:
        raw.append((b"host", host.encode()))
    if origin is not None:
        raw.append((b"origin", origin.encode()))
    raw += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": "websocket", "scheme": scheme, "headers": raw, "server": ("127.0.0.1", 8000)}


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://localhost:8000", "localhost:8000", "ws"),
        ("http://LOCALHOST:8000", "localhost:8000", "ws"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws"),
        ("http://[::1]:8000", "[::1]:8000", "ws"),
        ("http://localhost", "localhost", "ws"),
        ("https://localhost", "localhost", "wss"),
        ("https://localhost", "localhost:443", "wss"),
        (None, "localhost:8000", "ws"),  # a program, not a page
    ],
)
def test_the_sites_own_origin_is_accepted(origin, host, scheme):
    assert check(scope(origin, host, scheme)) is True


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://localhost:3000", "localhost:8000", "ws"),  # another port of the host
        ("http://localhost", "localhost:8000", "ws"),
        ("https://localhost:8000", "localhost:8000", "ws"),  # another scheme
        ("http://localhost", "localhost", "wss"),  # a plain-HTTP page on an HTTPS site
        ("http://127.0.0.1:8000", "localhost:8000", "ws"),  # another host, also allowed
        ("http://evil.example:8000", "evil.example:8000", "ws"),  # a host not served here
        ("http://localhost:8000/path", "localhost:8000", "ws"),
        ("http://user@localhost:8000", "localhost:8000", "ws"),
        ("http://localhost:99999", "localhost:8000", "ws"),
        ("ftp://localhost:8000", "localhost:8000", "ws"),
        ("null", "localhost:8000", "ws"),
        ("", "localhost:8000", "ws"),
    ],
)
def test_another_origin_of_an_allowed_host_is_refused(origin, host, scheme):
    assert check(scope(origin, host, scheme)) is False


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_behind_a_tls_proxy_the_forwarded_scheme_counts():
    assert check(scope("https://localhost", "localhost", x_forwarded_proto="https")) is True
    assert check(scope("http://localhost", "localhost", x_forwarded_proto="https")) is False
    assert check(scope("https://localhost", "localhost", x_forwarded_proto="http")) is False


@override_settings(
    ALLOWED_HOSTS=["chat.example.com"],
    CSRF_TRUSTED_ORIGINS=["https://app.example.com", "https://*.example.org"],
)
def test_csrf_trusted_origins_are_allowed_by_scheme_host_and_port():
    host = "chat.example.com"
    assert check(scope("https://app.example.com", host, "wss")) is True
    assert check(scope("https://a.b.example.org", host, "wss")) is True
    assert check(scope("http://app.example.com", host, "wss")) is False
    assert check(scope("https://app.example.com:8443", host, "wss")) is False
    assert check(scope("https://example.com", host, "wss")) is False


def test_without_a_host_header_only_default_ports_of_allowed_hosts_pass():
    """In-process test harnesses send no Host; a browser always does."""
    bare = {"type": "websocket", "headers": [(b"origin", b"http://localhost")]}
    assert check(bare) is True
    assert check({**bare, "headers": [(b"origin", b"http://localhost:3000")]}) is False
    assert check({**bare, "headers": [(b"origin", b"http://evil.example")]}) is False


# --- on the real servers: what daphne and uvicorn put in the scope is what the check reads ------
@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_real_servers_refuse_another_port_of_the_same_host(processes, cookies, server):
    import websockets
    from websockets.exceptions import InvalidStatus

    srv = processes.daphne(server=server)
    headers = {"Cookie": cookies["bob"]}
    with processes.explain():
        own = f"http://127.0.0.1:{srv.port}"
        async with websockets.connect(
            srv.ws_url("lobby"), origin=own, additional_headers=headers
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "sync.done"
        for other in (f"http://127.0.0.1:{srv.port + 1}", f"https://127.0.0.1:{srv.port}"):
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(
                    srv.ws_url("lobby"), origin=other, additional_headers=headers
                ):
                    pass
            assert refused.value.response.status_code == 403
