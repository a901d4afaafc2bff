"""WebSocket origin check.

Cross-site WebSocket hijacking needs a browser, and browsers always send ``Origin``: a handshake
with an Origin must come from an allowed origin, compared by scheme, host and port (as Django's
CSRF check compares an HTTP request's Origin), not by host alone — a page on another port of
the same host (``http://localhost:3000``) or served over plain HTTP is another origin.
The allowed origins are:

- the site itself: the scheme of the connection (``wss``, or ``ws`` with the proxy's
  ``SECURE_PROXY_SSL_HEADER`` saying https, counts as ``https``, else ``http``) with the
  handshake's ``Host`` (default port of the scheme when it names none), that host being one of
  ``ALLOWED_HOSTS``;
- each of ``CSRF_TRUSTED_ORIGINS`` (``https://chat.example.com``, ``https://*.example.com``).

A handshake without ``Host`` (and no ``server`` in the scope) is not one a browser makes; it
is let through only with an Origin whose host is one of ALLOWED_HOSTS on its scheme's default
port. A handshake without Origin comes from a program, not a page, and goes on to
authentication.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(NamedTuple):
    scheme: str
    host: str  # lowercase; an IPv6 address in brackets, as in a Host header
    port: int


def parse_origin(value: str) -> Origin | None:
    """The origin an ``Origin`` header names, or None for "null" and anything malformed."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if parts.path or parts.query or parts.fragment:  # an origin is scheme://host[:port] only
        return None
    host = f"[{host}]" if ":" in host else host
    return Origin(scheme, host, port or DEFAULT_PORTS[scheme])


class BrowserOriginCheck:
    """``check(scope)``: may this handshake go on? Settings are read when it is made."""

    def __call__(self, scope) -> bool:
        origin_value = host_value = proto = None
        for name, value in scope.get("headers", []):
            if name == b"origin":  # the last Origin header counts
                origin_value = value.decode("latin1")
            elif name == b"host":
                host_value = value.decode("latin1")
            elif name == _proxy_header_name():
                proto = value.decode("latin1")
        if origin_value is None:
            return True
        origin = parse_origin(origin_value)
        if origin is None:
            return False
        if _trusted(origin):
            return True
        own = _own_origin(scope, host_value, proto)
        if own is not None:
            return origin == own
        return (
            validate_host(origin.host, _allowed_hosts())
            and origin.port == DEFAULT_PORTS[origin.scheme]
        )


def _allowed_hosts() -> list[str]:
    hosts = settings.ALLOWED_HOSTS
    return hosts or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])


def _proxy_header_name() -> bytes | None:
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not header or not header[0].startswith("HTTP_"):
        return None
    return header[0][5:].lower().replace("_", "-").encode("latin1")


def _own_origin(scope, host_value: str | None, proto: str | None) -> Origin | None:
    """The origin of the site this handshake was made to, or None when unknown."""
    secure = scope.get("scheme") == "wss"
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if header and proto is not None:
        secure = proto.split(",")[0].strip() == header[1]
    scheme = "https" if secure else "http"
    if host_value is None:
        server = scope.get("server")
        if not server or server[0] is None:
            return None
        host, port = server[0], server[1]
        host = f"[{host}]" if ":" in host else host
    else:
        host, port = split_domain_port(host_value)
    host = host.lower()
    if not host or not validate_host(host, _allowed_hosts()):
        return Origin("", "", 0)  # a host not served here: no origin matches it
    try:
        return Origin(scheme, host, int(port) if port else DEFAULT_PORTS[scheme])
    except ValueError:
        return Origin("", "", 0)


def _trusted(origin: Origin) -> bool:
    """One of CSRF_TRUSTED_ORIGINS, as Django's CSRF check reads them (exact, or ``*.domain``)."""
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        parts = urlsplit(entry)
        scheme = parts.scheme.lower()
        if scheme != origin.scheme:
            continue
        netloc = parts.netloc.lower()
        if netloc.startswith("*"):
            base, _, _ = netloc[1:].partition(":")
            explicit_port = urlsplit(entry.replace("*", "x", 1)).port
            if is_same_domain(origin.host, base) and origin.port == (
                explicit_port or DEFAULT_PORTS.get(scheme)
            ):
                return True
            continue
        trusted = parse_origin(f"{scheme}://{netloc}")
        if trusted == origin:
            return True
    return False
