"""The adapter on daphne's connections: autobahn's WebSocket protocol on a Twisted TCP transport
(the asyncio reactor, so on the application's event loop).

Private state it reads (checked once, ``DaphneConnection.needs``; daphne, autobahn and Twisted
have upper bounds in pyproject.toml for it): daphne's ASGI ``send`` is a ``functools.partial``
of its server's reply handler with the protocol as first argument, and its ``receive`` the
``get`` of the application's queue (realtime.inbox's ``Inbox``, or daphne's ``asyncio.Queue``);
autobahn's ``state`` / ``STATE_OPEN``, ``closeHandshakeTimeout`` and ``_perMessageCompress``;
Twisted's transport write buffer (``dataBuffer``, ``offset``, ``_tempDataLen``,
``_writeDisconnected``) and its socket. Waiting for a client to drain goes through Twisted's
public producer API (IConsumer).
"""

from __future__ import annotations

import asyncio
import functools
import logging

from django.conf import settings

from realtime.inbox import Inbox
from realtime.sockets.base import Adapter, Connection

log = logging.getLogger("parley.ws")

# Why a daphne connection is not read (DaphneConnection.paused).
_INBOX_FULL = 1
_DRAINING = 2
MAX_UNREAD_FRAMES = 16  # frames daphne may read ahead of the application

try:
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet.tcp import Server as TwistedTCPServer
except ImportError:  # daphne is not this process' server
    WebSocketProtocol = None


def adopt(send: object, receive: object) -> Connection | None:
    """The adapter on the daphne connection behind ``send`` and ``receive``; None if they are
    not daphne's, or the adapter declined."""
    if (
        WebSocketProtocol is None
        or not isinstance(send, functools.partial)
        or not send.args
        or not isinstance(send.args[0], WebSocketProtocol)
    ):
        return None
    inbox = getattr(receive, "__self__", None)  # daphne's receive: its queue's get
    if not isinstance(inbox, (Inbox, asyncio.Queue)):
        inbox = None
    protocol = send.args[0]
    transport = getattr(protocol, "transport", None)
    if type(transport) is not TwistedTCPServer or getattr(transport, "TLS", False):
        return None  # TLS or a unix socket: not this adapter's transport
    return DaphneConnection.of(protocol, inbox)


class DaphneConnection(Adapter):
    """Unsent bytes are the transport's buffers; waiting for them to drain registers a pull
    producer on the transport, which Twisted asks for more when its buffer is empty.

    daphne reads whatever the client sends into the application's queue (``inbox``), without
    limit, however far behind the application is (a socket whose posts wait for the database,
    one whose replay waits for the client). Here reading stops while ``MAX_UNREAD_FRAMES`` wait
    there (uvicorn stops at one) and while a replay waits for the client to drain, and
    resumes when neither holds (``paused``: the reasons, a bit each)."""

    __slots__ = ("inbox", "paused", "draining")
    server = "daphne"
    needs = (
        "state",
        "STATE_OPEN",
        "closeHandshakeTimeout",
        "transport.TLS",
        "transport.connected",
        "transport.socket",
        "transport.dataBuffer",
        "transport.offset",
        "transport._tempDataLen",
        "transport._writeDisconnected",
        "transport.producer",
        "transport.streamingProducer",
        "transport.registerProducer",
        "transport.unregisterProducer",
        "transport.pauseProducing",
        "transport.resumeProducing",
    )

    def __init__(self, protocol, inbox: Inbox | asyncio.Queue | None = None) -> None:
        super().__init__(protocol)
        self.inbox = inbox
        self.paused = 0
        self.draining: asyncio.Task | None = None  # the wait for the buffer to empty, if any

    def write(self, frame: bytes) -> bool:
        protocol = self.protocol
        try:
            transport = protocol.transport
            if (
                protocol.state != protocol.STATE_OPEN
                or getattr(protocol, "_perMessageCompress", None) is not None
                or not transport.connected
                or transport._writeDisconnected
            ):
                return False
            idle = not transport._tempDataLen and transport.offset == len(transport.dataBuffer)
            sock = transport.socket
        except AttributeError as exc:
            self.decline(exc)
            return False
        if idle:
            # Nothing queued: send now instead of asking the reactor to watch for writability
            # and write on a later turn of the loop.
            try:
                sent = sock.send(frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                return True  # the connection broke: Twisted sees it on its next read
            if sent == len(frame):
                return True
            frame = frame[sent:]
        transport.write(frame)  # the rest, after what is queued, when the socket takes it
        return True

    def unsent(self) -> int:
        try:
            t = self.protocol.transport
            return len(t.dataBuffer) - t.offset + t._tempDataLen
        except AttributeError as exc:
            self.decline(exc)
            return 0

    def congested(self) -> bool:
        return self.unsent() > settings.PARLEY["WRITE_HIGH_WATER_BYTES"]

    async def drained(self) -> bool:
        if not self.congested():
            return True
        if self.draining is None:  # one wait per connection, whoever else waits too
            self.draining = asyncio.ensure_future(self._drain())
        return await asyncio.shield(self.draining)

    async def _drain(self) -> bool:
        transport = self.protocol.transport
        # The transport already has a producer: daphne's HTTP channel, which stays registered
        # after the upgrade. Stand in for it while waiting, and hand on what it is told.
        try:
            original, streaming = transport.producer, transport.streamingProducer
        except AttributeError as exc:
            self.decline(exc)
            return True  # nothing to wait with: the server's send buffers as it always did
        if original is not None:
            transport.unregisterProducer()
        done = asyncio.get_running_loop().create_future()
        standin = _Drained(original, lambda: not self.congested(), done)
        transport.registerProducer(standin, False)  # pull: told each time the buffer empties
        self._pause(_DRAINING)  # read nothing more from a client that does not read
        try:
            return await done
        finally:
            self.draining = None
            if transport.producer is standin:
                transport.unregisterProducer()
            if original is not None and transport.connected:
                transport.registerProducer(original, streaming)
            self._resume(_DRAINING)

    def received(self) -> None:
        if self.inbox is not None and self.inbox.qsize() >= MAX_UNREAD_FRAMES:
            self._pause(_INBOX_FULL)

    def receiving(self) -> None:
        if self.paused & _INBOX_FULL and self.inbox.qsize() < MAX_UNREAD_FRAMES // 2:
            self._resume(_INBOX_FULL)

    def _pause(self, reason: int) -> None:
        if not self.paused:
            self.protocol.transport.pauseProducing()
        self.paused |= reason

    def _resume(self, reason: int) -> None:
        self.paused &= ~reason
        transport = self.protocol.transport
        if not self.paused and transport.connected:
            transport.resumeProducing()

    def closing(self, flush: float) -> None:
        # autobahn drops the connection when the client has not answered the close frame
        # within its close-handshake timeout (1 s by default): give it ``flush``.
        self.protocol.closeHandshakeTimeout = flush


class _Drained:
    """A Twisted pull producer standing in for the transport's own (``original``, or None):
    resolves ``done`` with True when Twisted asks for more and ``ready()`` (at registration,
    then whenever the transport has written everything it held), with False when the
    connection is lost; either is handed on to ``original``."""

    def __init__(self, original, ready, done: asyncio.Future) -> None:
        self.original = original
        self.ready = ready
        self.done = done

    def resumeProducing(self) -> None:  # noqa: N802 - Twisted's interface
        if not self.done.done() and self.ready():
            self.done.set_result(True)
            if self.original is not None:
                self.original.resumeProducing()

    def stopProducing(self) -> None:  # noqa: N802
        if not self.done.done():
            self.done.set_result(False)
        if self.original is not None:
            self.original.stopProducing()

    def pauseProducing(self) -> None:  # noqa: N802 - not asked of a pull producer
        pass
