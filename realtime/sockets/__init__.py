"""The one place that reaches into the ASGI servers' connections: one adapter per server
(``daphne.py``: Twisted's transport under autobahn; ``uvicorn.py``: the asyncio transport under
websockets' sans-I/O protocol); realtime.sending is what consumers do with them.

Two things need more of a connection than ASGI's ``send`` offers:
- Frames made once: an event's frame is the same bytes for every client (unmasked, RFC 6455
  5.1, unless the connection negotiated compression), so the fan-out makes it once and writes
  it to each socket's transport (``Connection.write``). The per-socket share is a few checks
  and one write, where the servers' own send framed each copy again (autobahn: ~15 µs of
  Python per frame, daphne also asking Twisted to watch the socket for writability and write
  on the next turn of the loop: two epoll_ctl calls and a callback per frame, a third of its
  fan-out time in the profile).
- Slow readers: ASGI has no back-pressure for a client that does not read. daphne's send
  buffers without limit (a client sending ``sync`` frames and reading nothing grew daphne by
  11 MB a frame); uvicorn's send waits for the client, forever, and whoever awaits it waits too
  (the layer's fan-out, hence every other socket of the process). So a consumer asks the
  connection how much it holds unsent (``Connection.unsent``) and waits for it to drain
  (``Connection.drained``) before writing its own frames, and live frames never wait
  (realtime.sending).

Each adapter checks what it needs of its server's private state once, and declines with one
log line rather than raising (``base.Adapter``): the consumer then uses ``send`` as any ASGI
application would. ``parley_frames_direct`` (ops/metrics.py) counts the frames written through
an adapter; tests/chat/test_servers.py asserts that the fast path is taken on both servers at
the pinned versions.
"""

from __future__ import annotations

from realtime.sockets import daphne, uvicorn
from realtime.sockets.base import ClientGone, Connection, Disconnected, text_frame

__all__ = ["ClientGone", "Connection", "Disconnected", "connection", "text_frame"]

_ADAPTERS = (uvicorn.adopt, daphne.adopt)


def connection(send: object, receive: object = None) -> Connection | None:
    """The connection behind the server's own ``send`` and ``receive`` (the ASGI callables of
    an accepted WebSocket), or None for a server no adapter knows, or whose adapter declined."""
    for adopt in _ADAPTERS:
        conn = adopt(send, receive)
        if conn is not None:
            return conn
    return None
