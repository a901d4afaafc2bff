"""What every WebSocket consumer of the project shares."""

from __future__ import annotations

import functools
from collections.abc import Callable

from ops.metrics import frames  # counted in a plain int, flushed per fan-out (ops/metrics.py)

try:  # daphne's WebSocket implementation raises this on a send after the client left
    from autobahn.exception import Disconnected
except ImportError:  # another ASGI server
    Disconnected = OSError

# What a send to a client that has just left raises (uvicorn: ClientDisconnected, an OSError).
ClientGone = (Disconnected, OSError)


class ClientGoneSafeSend:
    """Mixin: a send to a client that has just gone is dropped instead of crashing the consumer.

    A live event can reach a consumer between its client closing and the server's
    ``websocket.disconnect`` message being dispatched. The send then raises (daphne: autobahn's
    ``Disconnected``; the ASGI spec: an ``OSError``), which would end the consumer with an error
    and skip ``disconnect()`` — leaving its groups and presence behind. Instead, later sends are
    skipped and the queued disconnect cleans up as usual.

    A consumer that sets ``write_frame`` (frame_writer) has its text frames written straight to
    the connection whenever the server allows, and through the server's send otherwise.
    """

    client_gone = False
    write_frame = None  # writes a ready frame to the connection, when known (frame_writer)
    sending = 0  # sends through the server in progress: direct writes queue behind them

    async def send(self, text_data=None, bytes_data=None, close=False):
        if self.client_gone:
            return
        if (
            self.write_frame is not None
            and text_data is not None
            and not close
            and self.write_direct(text_frame(text_data))
        ):
            return
        self.sending += 1
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
            frames.sent += not close
        except ClientGone:
            self.client_gone = True
        finally:
            self.sending -= 1

    async def send_prepared(self, message: dict) -> None:
        """Send a ready ASGI ``websocket.send`` message, one dict shared by every socket an
        event goes to (the server only reads it)."""
        if self.client_gone:
            return
        self.sending += 1
        try:
            await self.base_send(message)
            frames.sent += 1
        except ClientGone:
            self.client_gone = True
        finally:
            self.sending -= 1

    def write_direct(self, frame: bytes) -> bool:
        """Write ``frame`` (``text_frame``) straight to the connection; False when it was not
        (no writer, the writer declined, or a send through the server is still in progress:
        writing now would overtake it - a socket's frames leave in the order they are sent)."""
        if self.write_frame is not None and not self.sending and self.write_frame(frame):
            frames.sent += 1
            return True
        return False


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


FrameWriter = Callable[[bytes], bool]


def frame_writer(send) -> FrameWriter | None:
    """For the server's own ``send`` (the ASGI ``send`` of an accepted WebSocket), a function
    that writes a ready frame (``text_frame``) to its connection and returns True, or returns
    False when it must not (not open, closing, compression negotiated, the client not reading:
    use ``send`` then, which frames, compresses or waits as the server does). None for a server
    it does not know."""
    owner = getattr(send, "__self__", None)
    if _UvicornProtocol is not None and isinstance(owner, _UvicornProtocol):
        return _uvicorn_writer(owner)
    if (
        _DaphneProtocol is not None
        and isinstance(send, functools.partial)
        and send.args
        and isinstance(send.args[0], _DaphneProtocol)
    ):
        return _daphne_writer(send.args[0])
    return None


def _uvicorn_writer(protocol) -> FrameWriter:
    def write(frame: bytes) -> bool:
        conn = protocol.conn
        if (
            protocol.close_sent
            or protocol.disconnected
            or not protocol.writable.is_set()  # the client is not reading: send() waits
            or conn.state is not _WS_OPEN
            or conn.extensions
            or protocol.transport.is_closing()
        ):
            return False
        protocol.transport.write(frame)
        return True

    return write


def _daphne_writer(protocol) -> FrameWriter:
    def write(frame: bytes) -> bool:
        if (
            protocol.state != protocol.STATE_OPEN
            or getattr(protocol, "_perMessageCompress", None) is not None
        ):
            return False
        transport = protocol.transport
        if (
            type(transport) is not _TwistedTCPServer
            or transport.TLS
            or not transport.connected
            or transport._writeDisconnected
        ):
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

    return write


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
