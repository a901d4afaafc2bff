"""The adapter on uvicorn's connections: its sans-I/O ``websockets`` protocol
(``--ws websockets-sansio``) on an asyncio (uvloop) transport.

Private state it reads (checked once, ``UvicornConnection.needs``; uvicorn and websockets have
upper bounds in pyproject.toml for it): uvicorn's ASGI ``send`` is a bound method of its
protocol object, which keeps the websockets ``conn`` (``state``, ``extensions``, and its public
``send_text`` / ``data_to_send``), the ``writable`` event its ``pause_writing`` /
``resume_writing`` clear and set, ``close_sent``, ``disconnected`` and the asyncio
``transport`` (public API: write-buffer size and limits).
"""

from __future__ import annotations

import asyncio

from django.conf import settings

from realtime.sockets.base import Adapter, Connection

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State

    _WS_OPEN = State.OPEN
except ImportError:  # uvicorn is an option
    WebSocketsSansIOProtocol = None


def adopt(send: object, receive: object) -> Connection | None:
    """The adapter on the uvicorn connection behind ``send``; None if it is not uvicorn's, or
    the adapter declined."""
    owner = getattr(send, "__self__", None)
    if WebSocketsSansIOProtocol is None or not isinstance(owner, WebSocketsSansIOProtocol):
        return None
    return UvicornConnection.of(owner)


class UvicornConnection(Adapter):
    """The transport's write-buffer limits are set to Parley's high-water mark, so uvicorn's own
    ``writable`` event (cleared by ``pause_writing``, set by ``resume_writing``) says when."""

    __slots__ = ()
    server = "uvicorn"
    needs = (
        "conn.send_text",
        "conn.data_to_send",
        "conn.state",
        "conn.extensions",
        "writable",
        "close_sent",
        "disconnected",
        "transport.is_closing",
        "transport.get_write_buffer_size",
        "transport.set_write_buffer_limits",
    )

    @classmethod
    def of(cls, protocol) -> Connection | None:
        adapter = super().of(protocol)
        if adapter is not None and not protocol.transport.is_closing():
            protocol.transport.set_write_buffer_limits(
                high=settings.PARLEY["WRITE_HIGH_WATER_BYTES"]
            )
        return adapter

    def _open(self) -> bool:
        p = self.protocol
        return not (
            p.close_sent
            or p.disconnected
            or p.conn.state is not _WS_OPEN
            or p.transport.is_closing()
        )

    def write(self, frame: bytes) -> bool:
        p = self.protocol
        try:
            if p.conn.extensions:
                return False  # compressed: write_text
            if not self._open():
                # closing or gone, nothing can reach the client (and the server's send would
                # wait, or raise): the frame is dropped, the disconnect follows.
                return True
        except AttributeError as exc:
            self.decline(exc)
            return False
        p.transport.write(frame)
        return True

    def write_text(self, text: str) -> bool:
        p = self.protocol
        try:
            if not self._open():
                return True
        except AttributeError as exc:
            self.decline(exc)
            return False
        p.conn.send_text(text.encode())
        p.transport.write(b"".join(p.conn.data_to_send()))
        return True

    def unsent(self) -> int:
        return self.protocol.transport.get_write_buffer_size()

    def congested(self) -> bool:
        try:
            return not self.protocol.writable.is_set()
        except AttributeError as exc:
            self.decline(exc)
            return False

    async def drained(self) -> bool:
        # uvicorn reads one frame at a time (it pauses reading until the application receives),
        # so there is nothing more to stop here.
        try:
            writable = self.protocol.writable
        except AttributeError as exc:
            self.decline(exc)
            return True
        await writable.wait()
        return not self.protocol.disconnected

    def closing(self, flush: float) -> None:
        p = self.protocol
        # uvicorn's send waits for ``writable`` before anything, a close included; the close
        # frame is queued after what the client has not read, that is all we need.
        try:
            p.writable.set()
        except AttributeError as exc:
            self.decline(exc)
            return
        # uvicorn closes the transport after its close timeout, which flushes first: for a
        # client that never reads, never. Drop the connection after ``flush`` instead.
        asyncio.get_running_loop().call_later(flush, self._abort)

    def _abort(self) -> None:
        if not self.protocol.disconnected:
            self.protocol.transport.abort()
