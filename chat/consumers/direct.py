"""The one place Parley's sockets depart from channels' consumer loop, and why.

channels' ``AsyncConsumer.__call__`` (channels 4.3) runs, for a consumer without a channel of
its own, ``await_many_dispatch([receive], self.dispatch)``: a task per ``receive()`` plus an
``asyncio.wait`` (its set, future and callbacks) held for the whole life of the socket, about
3 KiB of every idle socket's memory (the benchmark's ``idle`` scenario). With one source of
messages, awaiting ``receive()`` and dispatching each message in turn is the same loop.

Its ``dispatch`` hops to the sync thread before every handler (``aclose_old_connections``): a
thread round trip per frame received, each post's included. Sockets built on this class reach
the database only through ``infra.db``, whose calls close old connections on the threads that
hold them, so the hop is left out.

A socket waiting for its turn to connect (chat.consumers.base) reads its next message ahead
(``receive_ahead``), to see a client that leaves meanwhile; the loop takes that message first,
or, if none came while it waited, reads on itself (``stop_reading_ahead``).

Everything else is channels' public API: the handlers named by ``get_handler_name``,
``StopConsumer`` to end, ``AsyncWebsocketConsumer``'s handshake, send and close.
"""

from __future__ import annotations

import asyncio

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer


class DirectConsumer(AsyncWebsocketConsumer):
    """A WebSocket consumer with no channel of its own, served by the loop above.

    Hooks for subclasses: ``opened(receive, send)`` before the first message, ``receiving()``
    and ``received()`` around each wait for one, ``closed()`` when the consumer ends, however
    it ends."""

    channel_layer_alias = None
    channel_layer = None  # what AsyncConsumer sets for channel_layer_alias None
    ahead: asyncio.Task | None = None  # the next message, being read ahead (receive_ahead)

    async def __call__(self, scope, receive, send) -> None:
        self.scope = scope
        self.base_send = send
        self.base_receive = receive
        self.opened(receive, send)
        try:
            while True:
                if self.ahead is None:
                    self.receiving()
                    message = await receive()
                else:
                    message = await self.ahead
                    self.ahead = None
                self.received()
                await self.dispatch(message)
        except StopConsumer:
            pass  # the socket closed: exit cleanly, as AsyncConsumer does
        finally:
            if self.ahead is not None:
                self.ahead.cancel()
            await self.closed()

    def receive_ahead(self) -> asyncio.Task:
        """The next message, read while a handler still runs (it is dispatched after it): a
        task to wait on beside something else, never cancelled (no message is lost)."""
        if self.ahead is None:
            self.receiving()
            self.ahead = asyncio.ensure_future(self.base_receive())
        return self.ahead

    def stop_reading_ahead(self) -> None:
        """Give up a read ahead that has no message yet: the loop reads the next one itself,
        so an idle socket keeps no task of its own waiting on ``receive()`` (its task, coroutine
        and weak reference: ~670 bytes a socket, tracemalloc in the ``idle`` scenario). Safe on
        the servers Parley runs on: their ``receive`` is the ``get`` of a realtime.inbox ``Inbox``
        (or an ``asyncio.Queue``), and a cancelled ``get`` leaves the message in the queue for the
        next one."""
        if self.ahead is not None and not self.ahead.done():
            self.ahead.cancel()
            self.ahead = None

    async def dispatch(self, message: dict) -> None:
        """channels' dispatch without its hop to the sync thread (see the module docstring)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    def opened(self, receive, send) -> None:
        """The consumer starts, before its first message."""

    def receiving(self) -> None:
        """About to wait for the next message."""

    def received(self) -> None:
        """A message came; it is dispatched next."""

    async def closed(self) -> None:
        """The consumer ends (closed, or on an error)."""
