"""uvicorn's sans-I/O ``websockets`` protocol, its per-connection queue a
``realtime.inbox.Inbox`` and its ``writable`` event a ``realtime.inbox.Flag`` (``--ws
realtime.uvicorn_ws:LeanWebSocketsProtocol``, set by realtime/servers.py): 4.3 KiB less per
idle socket than asyncio's ``Queue`` and ``Event``.

The protocol's ``__init__`` makes ``queue`` (``put_nowait``, ``get``, ``empty``) and ``writable``
(``set``, ``clear``, ``wait``; also read by realtime.sockets.uvicorn); they are replaced right
after it, before anything is queued or awaited. Checked once, at the pinned uvicorn (<0.55) by
tests/chat/test_servers.py: where either is not what this expects, connections keep uvicorn's
own (one log line a process).
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from realtime.inbox import Flag, Inbox

log = logging.getLogger("parley.server")


class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
    expects = {"queue": asyncio.Queue, "writable": asyncio.Event}  # what uvicorn's __init__ makes
    lean: bool | None = None  # decided by the first connection

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if LeanWebSocketsProtocol.lean is None:
            LeanWebSocketsProtocol.lean = (
                all(type(getattr(self, n, None)) is t for n, t in self.expects.items())
                and self.queue.empty()
                and self.writable.is_set()
            )
            if not LeanWebSocketsProtocol.lean:
                log.warning("uvicorn's WebSocket protocol changed: it keeps asyncio's queue")
        if LeanWebSocketsProtocol.lean:
            self.queue = Inbox()
            self.writable = Flag(True)
