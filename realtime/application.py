"""The ASGI application: HTTP to Django; a WebSocket through the origin check, authentication
and URL routing to its consumer, in one step.

For a WebSocket it does what this stack did:

    ProtocolTypeRouter({"websocket": BrowserOriginValidator(AuthMiddlewareStack(
        TokenAuthMiddleware(URLRouter(websocket_urlpatterns))))})

but every layer of that stack copied the scope and stayed suspended in ``await inner(...)`` for
the whole life of the connection: eight coroutine frames, six copies of the scope, channels'
session wrapper, a lazy session and a lazy user: about 6 KiB of every idle socket's RSS.
Here one frame and one copy of the scope stay. What a consumer sees is the same but for
``scope["session"]`` and ``scope["cookies"]``, which are gone: the session is read to find the
user and then dropped (no consumer uses it, and a WebSocket response never carries a session
cookie, so there is nothing to save); and ``scope["path_remaining"]``, which only nested
routers read. Routes are matched by Django's public ``resolve`` (URLRouter's matching reads
Django's undocumented ``pattern.match``).

Authentication: a bearer token (``Authorization`` header, or a ``bearer.<token>`` subprotocol;
accounts.authentication) takes precedence over the session cookie, and a presented token that
is invalid makes the user anonymous rather than falling back to the cookie (the consumer then
closes with 4401). Without a token, the session's user as channels' ``AuthMiddleware`` finds it.
"""

from __future__ import annotations

from importlib import import_module

from channels.auth import get_user
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import parse_cookie
from django.urls import Resolver404, resolve

from accounts.authentication import token_in
from accounts.tokens import token_for
from infra.db import db
from ops import drain, metrics
from ops import http as ops_http
from realtime.origin import BrowserOriginCheck


class _Routes:
    """The WebSocket routes as a URLconf: Django's ``resolve`` takes any object with
    ``urlpatterns`` (and caches its resolver per object)."""

    def __init__(self, routes) -> None:
        self.urlpatterns = list(routes)


class Application:
    def __init__(self, http, websocket_routes) -> None:
        self.http = http
        self.routes = _Routes(websocket_routes)
        self.origin_allowed = BrowserOriginCheck()

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            if scope["path"] in ops_http.PATHS:  # probes and metrics: before Django (ops/http.py)
                return await ops_http.serve(scope, receive, send)
            with drain.track():  # a graceful restart lets it finish (ops/drain.py)
                return await self.http(scope, receive, send)
        if kind != "websocket":
            raise ValueError(f"No application configured for scope type {kind!r}")
        if not self.origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        app, args, kwargs = self._route(scope)
        user, credential, expires = await _user(scope)
        # The scope's only copy: the server's dict is not changed.
        scope = {
            **scope,
            "user": user,
            "credential": credential,  # re-checked when access changes (chat.access)
            "credential_expires": expires,  # a token's expiry: the socket closes then
            "url_route": {"args": args, "kwargs": kwargs},
        }
        # channels' ``as_asgi()`` keeps the consumer class and its arguments on the function it
        # returns (``consumer_class``, ``consumer_initkwargs``: set by channels, not documented).
        # Made from them here, the consumer runs without that function's frame (an idle
        # socket's memory, above); without them the function is called as any ASGI app.
        consumer_class = getattr(app, "consumer_class", None)
        initkwargs = getattr(app, "consumer_initkwargs", None)
        sockets = metrics.OPEN_SOCKETS.labels(_socket_kind(consumer_class))
        sockets.inc()
        try:
            if consumer_class is None or initkwargs is None:
                return await app(scope, receive, send)
            consumer = consumer_class(**initkwargs)
            with drain.track(consumer):  # closed with 1012 on a graceful restart
                return await consumer(scope, receive, send)
        finally:
            sockets.dec()

    def _route(self, scope) -> tuple:
        """(consumer app, args, kwargs) of the route matching the path (Django's resolver, as
        channels' URLRouter matches: the root path stripped, route defaults in kwargs);
        ValueError when none does (the server closes)."""
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path:
            if not path.startswith(root_path):
                raise ValueError(f"No route found for path {path!r}.")
            path = path[len(root_path) :]
        try:
            match = resolve("/" + path.lstrip("/"), urlconf=self.routes)
        except Resolver404:
            raise ValueError(f"No route found for path {path!r}.") from None
        return match.func, tuple(match.args), match.kwargs


def _socket_kind(consumer_class) -> str:
    """The ``kind`` label of ``parley_open_sockets``: RoomConsumer -> "room", and so on."""
    name = getattr(consumer_class, "__name__", "other")
    return {"RoomConsumer": "room", "UserConsumer": "me", "DashboardConsumer": "dashboard"}.get(
        name, "other"
    )


async def _user(scope) -> tuple:
    """(user, credential, expiry): the credential it authenticated with (accounts.credentials;
    None for an anonymous user) and when it expires (a token's ``expires_at``, else None)."""
    raw = token_in(scope)
    if raw is not None:
        token = await db(token_for)(raw)
        if token is None:
            return AnonymousUser(), None, None
        return token.user, ("token", token.pk), token.expires_at
    return (*await _session_user(scope), None)


async def _session_user(scope) -> tuple:
    """The user of the session named by the cookie, as channels' AuthMiddleware finds it."""
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            cookies = parse_cookie(value.decode("latin1"))
            break
    else:
        return AnonymousUser(), None
    key = cookies.get(settings.SESSION_COOKIE_NAME)
    if key is None:
        return AnonymousUser(), None
    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    user = await get_user({"session": store})
    return user, ("session", key) if user.is_authenticated else None
