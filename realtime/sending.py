"""What every WebSocket consumer of the project shares: sends that survive a client that has
gone, and a client that does not read (the server's connection: realtime.sockets)."""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from ops import drain
from ops.metrics import frames  # counted in a plain int, flushed per fan-out (ops/metrics.py)
from realtime.sockets import ClientGone, Connection, text_frame

log = logging.getLogger("parley.ws")

_closing: set[asyncio.Task] = set()  # closes of slow sockets under way (asyncio keeps weak refs)


class ClientGoneSafeSend:
    """Mixin: a send to a client that has just gone is dropped instead of crashing the consumer.

    A live event can reach a consumer between its client closing and the server's
    ``websocket.disconnect`` message being dispatched. The send then raises (daphne: autobahn's
    ``Disconnected``; the ASGI spec: an ``OSError``), which would end the consumer with an error
    and skip ``disconnect()`` — leaving its groups and presence behind. Instead, later sends are
    skipped and the queued disconnect cleans up as usual.

    A consumer that sets ``connection`` (``connection(send)``) has its text frames written
    straight to the connection whenever the server allows, and is protected from a client that
    does not read:
    - ``send`` (the socket's own frames: replays, acks, pongs) first waits while the connection
      holds more than ``WRITE_HIGH_WATER_BYTES`` unsent, so a replay goes no faster than the
      client reads. A client that has not drained within ``SLOW_CLIENT_GRACE_SECONDS`` is
      closed with ``slow_close_code``.
    - ``write_direct`` (live frames from the fan-out) never waits. A socket found holding more
      than ``SLOW_CLIENT_LIMIT_BYTES`` unsent, and still holding more a grace period later, is
      closed with ``slow_close_code``. The close frame goes out after what was queued; a client
      that has not read it a grace period later is dropped (its buffer with it).
    After such a close every send is skipped (``client_gone``).
    """

    client_gone = False
    accepted = False  # the handshake is done: a graceful restart closes it (ops.drain)
    connection: Connection | None = None  # the server's connection, when known (connection())
    sending = 0  # sends through the server in progress: direct writes queue behind them
    slow_close_code = 1008  # subclasses give theirs (Parley: chat.protocol.CLOSE_TOO_SLOW)
    slow_check: asyncio.TimerHandle | None = None  # armed while the socket is over the limit

    async def send(self, text_data=None, bytes_data=None, close=False):
        if self.client_gone:
            return
        conn = self.connection
        if conn is not None and not close and conn.congested() and not await self.drained():
            return
        if (
            conn is not None
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

    async def accept(self, subprotocol=None, headers=None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True
        drain.accepted(self)

    async def drain(self) -> None:
        """A graceful restart (ops.drain): close with 1012 (subclasses first finish what they
        received)."""
        await self.close(code=drain.CLOSE_RESTART, reason="server restart")
        self.client_gone = True  # nothing more is sent (uvicorn raises on a send after a close)

    async def close(self, code=None, reason=None) -> None:
        """Close the socket (nothing once it is closed or gone). Never waits for a client that
        does not read: the close frame follows what is queued, and a client that has not read
        it a grace period later is disconnected (uvicorn's close would wait for the client)."""
        if self.client_gone:
            return
        conn = self.connection
        if conn is not None and conn.congested():
            conn.closing(settings.PARLEY["SLOW_CLIENT_GRACE_SECONDS"])
        try:
            await super().close(code=code, reason=reason)
        except ClientGone:
            self.client_gone = True

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

    def write_direct(self, frame: bytes, text: str | None = None) -> bool:
        """Write ``frame`` (``text_frame``; or ``text``, framed as the server does, where a
        frame made once cannot go, e.g. compression) straight to the connection, never
        waiting; False when it was not (no connection, the server declined, or a send through
        the server is still in progress: writing now would overtake it - a socket's frames
        leave in the order they are sent)."""
        conn = self.connection
        if (
            conn is None
            or self.sending
            or not (conn.write(frame) or (text is not None and conn.write_text(text)))
        ):
            return False
        frames.sent += 1
        frames.direct += 1
        if self.slow_check is None and conn.unsent() > settings.PARLEY["SLOW_CLIENT_LIMIT_BYTES"]:
            grace = settings.PARLEY["SLOW_CLIENT_GRACE_SECONDS"]
            self.slow_check = asyncio.get_running_loop().call_later(grace, self._check_slow)
        return True

    async def drained(self) -> bool:
        """Wait until the connection holds at most the high-water mark unsent; True then. False
        (send nothing more) for a client that does not read that much within the grace period
        (closed as too slow) or that has gone."""
        conn = self.connection
        if conn is None:
            return not self.client_gone
        try:
            async with asyncio.timeout(settings.PARLEY["SLOW_CLIENT_GRACE_SECONDS"]):
                if not await conn.drained():
                    self.client_gone = True  # the connection was lost meanwhile
        except TimeoutError:
            await self.close_too_slow()
        return not self.client_gone

    def _check_slow(self) -> None:
        """A grace period after the socket was found over the limit: close it if it still is
        (a client reading meanwhile got below it and is left alone)."""
        self.slow_check = None
        limit = settings.PARLEY["SLOW_CLIENT_LIMIT_BYTES"]
        if not self.client_gone and self.connection.unsent() > limit:
            task = asyncio.ensure_future(self.close_too_slow())
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    async def close_too_slow(self) -> None:
        """Close the socket as too slow to read (``slow_close_code``); nothing more is sent."""
        if self.client_gone:
            return
        self.client_gone = True
        conn = self.connection
        log.warning(
            "closing a socket whose client does not read: %d bytes unsent (close code %d)",
            conn.unsent(),
            self.slow_close_code,
        )
        conn.closing(settings.PARLEY["SLOW_CLIENT_GRACE_SECONDS"])
        try:
            await self.base_send(
                {"type": "websocket.close", "code": self.slow_close_code, "reason": "too slow"}
            )
        except ClientGone:
            pass

    def forget_connection(self) -> None:
        """The consumer is done: no check may run for it later."""
        if self.slow_check is not None:
            self.slow_check.cancel()
            self.slow_check = None
