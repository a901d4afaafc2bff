"""What a server adapter is (``Connection``), the frame every adapter writes (``text_frame``),
and the check-once-and-decline rule every adapter follows (``Adapter``)."""

from __future__ import annotations

import logging

try:  # daphne's WebSocket implementation raises this on a send after the client left
    from autobahn.exception import Disconnected
except ImportError:  # another ASGI server
    Disconnected = OSError

log = logging.getLogger("parley.ws")

# What a send to a client that has just left raises (uvicorn: ClientDisconnected, an OSError).
ClientGone = (Disconnected, OSError)


def text_frame(text: str) -> bytes:
    """A complete, unmasked server text frame carrying ``text`` (RFC 6455 5.2)."""
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


class Adapter(Connection):
    """A ``Connection`` on one server's private state, which a release of that server may
    rename or remove. The rule every adapter follows:

    - ``needs`` lists what it reads (dotted paths from the protocol object). They are checked
      once, on the first connection (``of``); if any is missing the adapter declines: one log
      line, and every socket uses the server's own ``send`` (no frames made once, no slow-reader
      protection), as any ASGI application would.
    - An ``AttributeError`` met later (state that exists only sometimes, a path not listed)
      never escapes: each method catches it, calls ``decline`` (the same log line, later
      connections get no adapter) and answers as a connection without the feature would
      (``write`` False: the caller uses the server's send). ``write`` reads all private state
      before it writes a byte, so a declined write has written nothing.
    """

    __slots__ = ()
    server = "?"  # the server's name, for the log line
    needs: tuple[str, ...] = ()
    usable: bool | None = None  # None: not checked yet

    @classmethod
    def of(cls, protocol, *args) -> Connection | None:
        """An adapter on ``protocol``, or None if this adapter declined."""
        if cls.usable is None:
            missing = [path for path in cls.needs if not _has_path(protocol, path)]
            if missing:
                cls.decline(f"its connection lacks {', '.join(missing)}")
            else:
                cls.usable = True
        return cls(protocol, *args) if cls.usable else None

    @classmethod
    def decline(cls, why: object) -> None:
        """Turn the adapter off for every later connection, with one log line."""
        if cls.usable is not False:
            cls.usable = False
            log.warning(
                "%s adapter declined (%s): sockets use the server's own send (no frames "
                "made once, no slow-reader protection)",
                cls.server,
                why,
            )


def _has_path(obj, path: str) -> bool:
    for name in path.split("."):
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True
