"""realtime.application: the WebSocket entry (origin check, authentication, routing) in one step."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.urls import path, re_path

from accounts.tokens import create_token
from realtime.application import Application
from tests.support.ws import session_cookie

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


class Probe(AsyncJsonWebsocketConsumer):
    """Accepts and tells what it was given."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    async def connect(self) -> None:
        await self.accept()
        user = self.scope["user"]
        await self.send_json(
            {
                "user": None if isinstance(user, AnonymousUser) else user.get_username(),
                "kwargs": self.scope["url_route"]["kwargs"],
                "args": list(self.scope["url_route"]["args"]),
                "keys": sorted(k for k in self.scope if k in ("session", "cookies")),
                "tag": self.tag,
            }
        )


app = Application(
    http=None,
    websocket_routes=[
        path("ws/probe/<slug:slug>/", Probe.as_asgi(tag="path")),
        re_path(r"^ws/re/(\d+)/$", Probe.as_asgi(tag="re")),
    ],
)


async def probe(url: str, headers=(), subprotocols=None) -> dict | None:
    comm = WebsocketCommunicator(app, url, headers=list(headers), subprotocols=subprotocols)
    connected, _ = await comm.connect(timeout=5)
    try:
        return await comm.receive_json_from(timeout=5) if connected else None
    finally:
        await comm.disconnect()


async def test_session_user_and_route_kwargs(alice):
    cookie = await database_sync_to_async(session_cookie)(alice)
    seen = await probe("/ws/probe/lobby/", [(b"cookie", cookie.encode())])
    # The session found the user and was not kept (nothing would save it).
    assert seen == {
        "user": alice.username,
        "kwargs": {"slug": "lobby"},
        "args": [],
        "keys": [],
        "tag": "path",
    }


async def test_positional_route_args_and_no_credentials():
    seen = await probe("/ws/re/42/")
    assert seen["args"] == ["42"] and seen["user"] is None and seen["tag"] == "re"


async def test_unknown_session_or_cookie_is_anonymous():
    for cookie in (b"sessionid=nosuchsession", b"other=1"):
        assert (await probe("/ws/probe/x/", [(b"cookie", cookie)]))["user"] is None


async def test_token_wins_over_the_session_and_a_bad_one_is_anonymous(alice, bob):
    _, raw = await database_sync_to_async(create_token)(user=bob, name="t")
    cookie = (await database_sync_to_async(session_cookie)(alice)).encode()
    by_header = [(b"cookie", cookie), (b"authorization", f"Bearer {raw}".encode())]
    assert (await probe("/ws/probe/x/", by_header))["user"] == bob.username
    by_subprotocol = await probe("/ws/probe/x/", [(b"cookie", cookie)], [f"bearer.{raw}"])
    assert by_subprotocol["user"] == bob.username
    bad = [(b"cookie", cookie), (b"authorization", b"Bearer plt_nope")]
    assert (await probe("/ws/probe/x/", bad))["user"] is None


async def test_foreign_origin_is_refused_before_routing():
    assert await probe("/ws/probe/x/", [(b"origin", b"http://evil.example")]) is None


async def test_unknown_path_and_scope_type_raise():
    with pytest.raises(ValueError, match="No route"):
        await app({"type": "websocket", "path": "/ws/nowhere/", "headers": []}, None, None)
    with pytest.raises(ValueError, match="lifespan"):
        await app({"type": "lifespan"}, None, None)
