"""uvicorn's httptools protocol with a deadline for each HTTP request (``--http
realtime.uvicorn_http:DeadlineHttpToolsProtocol``, set by realtime/servers.py).

uvicorn's ``--timeout-keep-alive`` only runs between a response and the next request, and is
cancelled by the first byte of that request; nothing bounds how long a client may take to
send a request's headers (slowloris). Here each connection must deliver a whole request
within ``PARLEY["HTTP_REQUEST_TIMEOUT"]`` seconds of opening, and the next one within as long
after each response; otherwise the connection is closed. A WebSocket handshake ends the
deadline. The hooks are uvicorn's protocol callbacks (``connection_made``,
``on_message_complete``, ``handle_websocket_upgrade``, ``on_response_complete``,
``connection_lost``), checked by tests/test_http_deadline.py at the pinned uvicorn (<1).
"""

from __future__ import annotations

import asyncio

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    request_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self.request_deadline = self.loop.call_later(
            settings.PARLEY["HTTP_REQUEST_TIMEOUT"], self._expire
        )

    def _disarm(self) -> None:
        if self.request_deadline is not None:
            self.request_deadline.cancel()
            self.request_deadline = None

    def _expire(self) -> None:
        self.request_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
