"""The one place that reaches into the ASGI servers' connections (daphne's Twisted transport,
uvicorn's asyncio transport); config.sending is what consumers do with them.

Two things need more of a connection than ASGI's ``send`` offers:
- Frames made once: an event's frame is the same bytes for every client, so the fan-out makes
  it once and writes it to each socket's transport (``Connection.write``).
- Slow readers: ASGI has no back-pressure for a client that does not read. daphne's send
  buffers without limit (a client sending ``sync`` frames and reading nothing grew daphne by
  11 MB a frame); uvicorn's send waits for the client, forever, and whoever awaits it waits too
  (the layer's fan-out, hence every other socket of the process). So a consumer asks the
  connection how much it holds unsent (``Connection.unsent``) and waits for it to drain
  (``Connection.drained``) before writing its own frames, and live frames never wait
  (config.sending).

Each server has one adapter class below; what it needs of the server's private state is
checked once, on its first connection, and a server whose state is not as expected gets no
adapter (a log line; the consumer then uses ``send`` as any ASGI application would).
"""

from __future__ import annotations

import asyncio
import functools
import logging

from django.conf import settings

try:  # daphne's WebSocket implementation raises this on a send after the client left
    from autobahn.exception import Disconnected
except ImportError:  # another ASGI server
    Disconnected = OSError

log = logging.getLogger("parley.ws")

# What a send to a client that has just left raises (uvicorn: ClientDisconnected, an OSError).
ClientGone = (Disconnected, OSError)

# --- writing a frame made once for every socket ---------------------------------------------------
# A server's frame to a client is the same bytes for every client (unmasked; RFC 6455 5.1) unless
# the connection negotiated compression. The fan-out makes an event's frame once and writes it to
# each socket's transport: the per-socket share is a few checks and one write, where the servers'
# own send framed each copy again (autobahn: ~15 µs of Python per frame, daphne also asking Twisted
# to watch the socket for writability and write on the next turn of the loop: two epoll_ctl calls
# and a callback per frame, a third of its fan-out time in the profile).


def text_frame(text: str) -> bytes:
    """A complete, unmasked server text frame carrying ``text``."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 1 << 16:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + payload


class Connection:
    """A server's WebSocket connection, for what ASGI's ``send`` cannot do. None of its methods
    waits except ``drained``, and none raises on a connection that has gone."""

    __slots__ = ("protocol",)

    def __init__(self, protocol) -> None:
        self.protocol = protocol

    def write(self, frame: bytes) -> bool:
        """Write a ready frame (``text_frame``) now, after whatever is queued; False when it
        must not be (compression negotiated, not open: use the server's send then)."""
        raise NotImplementedError

    def write_text(self, text: str) -> bool:
        """Write a text message now, framed as the server frames it (e.g. compressed); False
        when only the server's send can."""
        return False

    def unsent(self) -> int:
        """Bytes written for the client that the kernel has not taken yet."""
        raise NotImplementedError

    def congested(self) -> bool:
        """True while more than the high-water mark is unsent: ``drained`` would wait."""
        raise NotImplementedError

    async def drained(self) -> bool:
        """Wait until not ``congested``: True, or False if the connection was lost first (the
        caller bounds the wait). Stops reading the client meanwhile where the server would not
        (a client that does not read is not answered)."""
        raise NotImplementedError

    def closing(self, flush: float) -> None:
        """The application is about to close the socket through the server's send while the
        client does not read: that send must not wait for the client, and the connection is
        dropped ``flush`` seconds later if the client has not read its close frame by then."""
        raise NotImplementedError

    def receiving(self) -> None:
        """The application is about to wait for the client's next frame."""

    def received(self) -> None:
        """The application has taken one of the client's frames from the server."""


def connection(send, receive=None) -> Connection | None:
    """The connection behind the server's own ``send`` and ``receive`` (the ASGI callables of
    an accepted WebSocket), or None for a server it does not know or whose state is not as
    expected."""
    owner = getattr(send, "__self__", None)
    if _UvicornProtocol is not None and isinstance(owner, _UvicornProtocol):
        return _UvicornConnection.of(owner)
    if (
        _DaphneProtocol is not None
        and isinstance(send, functools.partial)
        and send.args
        and isinstance(send.args[0], _DaphneProtocol)
    ):
        inbox = getattr(receive, "__self__", None)  # daphne's receive: its queue's get
        if not isinstance(inbox, asyncio.Queue):
            inbox = None
        return _DaphneConnection.of(send.args[0], inbox)
    return None


def _high_water() -> int:
    return settings.PARLEY["WRITE_HIGH_WATER_BYTES"]


class _Checked(Connection):
    """An adapter whose server state is checked on its first connection (``needs``)."""

    __slots__ = ()
    needs: tuple[str, ...] = ()  # dotted attribute paths, from the protocol object
    usable: bool | None = None

    @classmethod
    def of(cls, protocol, *args) -> Connection | None:
        if cls.usable is None:
            missing = [path for path in cls.needs if not _has_path(protocol, path)]
            cls.usable = not missing
            if missing:
                log.warning(
                    "%s: the server's connection lacks %s; sockets use its plain send (no "
                    "frames made once, no slow-reader protection)",
                    cls.__name__,
                    ", ".join(missing),
                )
        return cls(protocol, *args) if cls.usable else None


def _has_path(obj, path: str) -> bool:
    for name in path.split("."):
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


class _UvicornConnection(_Checked):
    """uvicorn's sans-I/O ``websockets`` protocol on an asyncio (uvloop) transport. The
    transport's write-buffer limits are set to Parley's high-water mark, so uvicorn's own
    ``writable`` event (cleared by ``pause_writing``, set by ``resume_writing``) says when."""

    __slots__ = ()
    needs = (
        "conn.send_text",
        "conn.data_to_send",
        "conn.state",
        "conn.extensions",
        "writable",
        "close_sent",
        "disconnected",
        "transport.get_write_buffer_size",
        "transport.set_write_buffer_limits",
    )

    @classmethod
    def of(cls, protocol) -> Connection | None:
        adapter = super().of(protocol)
        if adapter is not None and not protocol.transport.is_closing():
            protocol.transport.set_write_buffer_limits(high=_high_water())
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
        if p.conn.extensions:
            return False  # compressed: write_text
        if self._open():
            p.transport.write(frame)
        # else: closing or gone, nothing can reach the client (and the server's send would
        # wait, or raise): the frame is dropped, the disconnect follows.
        return True

    def write_text(self, text: str) -> bool:
        p = self.protocol
        if self._open():
            p.conn.send_text(text.encode())
            p.transport.write(b"".join(p.conn.data_to_send()))
        return True

    def unsent(self) -> int:
        return self.protocol.transport.get_write_buffer_size()

    def congested(self) -> bool:
        return not self.protocol.writable.is_set()

    async def drained(self) -> bool:
        # uvicorn reads one frame at a time (it pauses reading until the application receives),
        # so there is nothing more to stop here.
        await self.protocol.writable.wait()
        return not self.protocol.disconnected

    def closing(self, flush: float) -> None:
        p = self.protocol
        # uvicorn's send waits for ``writable`` before anything, a close included; the close
        # frame is queued after what the client has not read, that is all we need.
        p.writable.set()
        # uvicorn closes the transport after its close timeout, which flushes first: for a
        # client that never reads, never. Drop the connection after ``flush`` instead.
        asyncio.get_running_loop().call_later(flush, self._abort)

    def _abort(self) -> None:
        if not self.protocol.disconnected:
            self.protocol.transport.abort()


class _DaphneConnection(_Checked):
    """daphne's autobahn protocol on a Twisted TCP transport (the asyncio reactor, so on the
    application's event loop). Unsent bytes are the transport's buffers; waiting for them to
    drain registers a pull producer on the transport (Twisted's public IConsumer API), which
    Twisted asks for more when its buffer is empty.

    daphne reads whatever the client sends into the application's queue (``inbox``), without
    limit, however far behind the application is (a socket whose posts wait for the database,
    one whose replay waits for the client). Here reading stops while ``MAX_UNREAD_FRAMES`` wait
    there (uvicorn stops at one) and while a replay waits for the client to drain, and
    resumes when neither holds (``paused``: the reasons, a bit each)."""

    __slots__ = ("inbox", "paused", "draining")

    def __init__(self, protocol, inbox: asyncio.Queue | None = None) -> None:
        super().__init__(protocol)
        self.inbox = inbox
        self.paused = 0
        self.draining: asyncio.Task | None = None  # the wait for the buffer to empty, if any

    needs = (
        "state",
        "STATE_OPEN",
        "closeHandshakeTimeout",
        "transport.dataBuffer",
        "transport.offset",
        "transport._tempDataLen",
        "transport.producer",
        "transport.streamingProducer",
        "transport.registerProducer",
        "transport.unregisterProducer",
        "transport.pauseProducing",
        "transport.resumeProducing",
    )

    @classmethod
    def of(cls, protocol, *args) -> Connection | None:
        transport = getattr(protocol, "transport", None)
        if type(transport) is not _TwistedTCPServer or transport.TLS:
            return None  # TLS or a unix socket: not this adapter's transport
        return super().of(protocol, *args)

    def write(self, frame: bytes) -> bool:
        protocol = self.protocol
        if (
            protocol.state != protocol.STATE_OPEN
            or getattr(protocol, "_perMessageCompress", None) is not None
        ):
            return False
        transport = protocol.transport
        if not transport.connected or transport._writeDisconnected:
            return False
        if not transport._tempDataLen and transport.offset == len(transport.dataBuffer):
            # Nothing queued: send now instead of asking the reactor to watch for writability
            # and write on a later turn of the loop.
            try:
                sent = transport.socket.send(frame)
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
        t = self.protocol.transport
        return len(t.dataBuffer) - t.offset + t._tempDataLen

    def congested(self) -> bool:
        return self.unsent() > _high_water()

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
        original, streaming = transport.producer, transport.streamingProducer
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


# Why a daphne connection is not read (_DaphneConnection.paused).
_INBOX_FULL = 1
_DRAINING = 2
MAX_UNREAD_FRAMES = 16  # frames daphne may read ahead of the application


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


try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol as _UvicornProtocol,
    )
    from websockets.protocol import State

    _WS_OPEN = State.OPEN
except ImportError:  # uvicorn is an option
    _UvicornProtocol = None

try:
    from daphne.ws_protocol import WebSocketProtocol as _DaphneProtocol
    from twisted.internet.tcp import Server as _TwistedTCPServer
except ImportError:
    _DaphneProtocol = None
