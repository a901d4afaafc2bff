"""Driving the real ASGI application in-process (channels' WebsocketCommunicator), with a real
session cookie, the real router and middleware, and the real Redis channel layer."""

from __future__ import annotations

import json
import uuid

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from config.asgi import application
from tests.support import contract

ORIGIN = b"http://localhost"
TIMEOUT = 5


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


class Socket:
    """One client WebSocket (a room's, /ws/me/ or /ws/dashboard/). Frames given as dicts and
    every frame received are checked against docs/asyncapi.yaml (tests.support.contract); text
    and bytes are sent as they are (deliberately broken input)."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.comm = communicator
        self.path = communicator.scope["path"]

    async def send(self, frame: dict | str | bytes) -> None:
        if isinstance(frame, dict):
            contract.check_frame(self.path, "client", frame)
        if isinstance(frame, bytes):
            await self.comm.send_to(bytes_data=frame)
        else:
            await self.comm.send_to(
                text_data=frame if isinstance(frame, str) else json.dumps(frame)
            )

    async def post(self, body: str, client_id: str | None = None) -> dict:
        """Send message.send and return the server's answer to it (ack or error)."""
        client_id = client_id or str(uuid.uuid4())
        await self.send({"type": "message.send", "body": body, "client_id": client_id})
        return await self.next(lambda f: f.get("client_id") == client_id)

    async def recv(self, timeout: float = TIMEOUT) -> dict:
        output = await self.comm.receive_output(timeout)
        if output["type"] == "websocket.close":
            contract.check_close(self.path, output.get("code"))
            raise Closed(output.get("code"))
        frame = json.loads(output["text"])
        contract.check_frame(self.path, "server", frame)
        return frame

    async def next(self, match=lambda f: True, timeout: float = TIMEOUT) -> dict:
        """The next frame that ``match``es, skipping others (message.new of own posts, etc.)."""
        while True:
            frame = await self.recv(timeout)
            if match(frame):
                return frame

    async def messages(self, until_seq: int, timeout: float = TIMEOUT) -> list[dict]:
        """message.new payloads received until one with seq >= until_seq arrives."""
        out: list[dict] = []
        while not out or out[-1]["seq"] < until_seq:
            frame = await self.next(lambda f: f["type"] == "message.new", timeout)
            out.append(frame["message"])
        return out

    async def close_code(self, timeout: float = TIMEOUT) -> int | None:
        """Wait for the server to close the socket; return the close code."""
        while True:
            output = await self.comm.receive_output(timeout)
            if output["type"] == "websocket.close":
                contract.check_close(self.path, output.get("code"))
                return output.get("code")
            contract.check_frame(self.path, "server", json.loads(output["text"]))

    async def nothing_pending(self) -> bool:
        return await self.comm.receive_nothing(timeout=0.2)

    async def disconnect(self) -> None:
        await self.comm.disconnect()


class Closed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"socket closed with {code}")
        self.code = code


async def open_socket(
    user=None, slug: str = "lobby", *, query: str = "", origin: bytes | None = ORIGIN
) -> tuple[Socket, dict | int | None]:
    """Connect to a room; return the socket and its first frame (sync.done) or the close
    code."""
    return await open_path(f"/ws/rooms/{slug}/", user, query=query, origin=origin)


async def open_path(
    path: str,
    user=None,
    *,
    query: str = "",
    origin: bytes | None = ORIGIN,
    headers: list[tuple[bytes, bytes]] = (),
) -> tuple[Socket, dict | int | None]:
    """Connect to any socket (``/ws/me/``, ``/ws/dashboard/``, a room) as ``user`` (by session
    cookie) or with the ``headers`` given (a cookie, an Authorization); return the socket and
    its first frame or the close code."""
    headers = list(headers)
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", cookie.encode()))
    contract.check_query(path, query)
    comm = WebsocketCommunicator(
        application, path + (f"?{query}" if query else ""), headers=headers
    )
    connected, code = await comm.connect(timeout=TIMEOUT)
    socket = Socket(comm)
    if not connected:
        return socket, code
    try:
        return socket, await socket.recv()
    except Closed as closed:
        return socket, closed.code
