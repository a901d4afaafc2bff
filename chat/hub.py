"""Parley's own fan-out hub: one Redis pub/sub connection per event loop (so per server
process), and every message on it handed to the local sockets that listen on its channel.

Why a hub: an event costs one Redis message and one deserialization per process, and each local
socket one function call: no per-socket queue, task wake-up, msgpack decode or Redis
SUBSCRIBE/UNSUBSCRIBE (channels' usual ``group_add`` of a consumer's own channel pays all four,
which made one process saturate between 100 and 500 listeners and stall for seconds when 1,000
sockets closed at once).

Why our own: channels-redis' public API has no listener callbacks and no word about a lost and
restored subscription; both took overriding about fifteen of its private members (its receive
task, shards, subscription set). This module uses redis-py's public asyncio ``PubSub`` only
(``subscribe``, ``unsubscribe``, ``get_message``, ``aclose``). channels-redis still serves what
its public API does (chat/layers.py): ``group_send`` publishes onto the same Redis channels.

Contract:
- ``listen(channel, key, deliver)``: from now on ``deliver(message)`` is called for every message
  published on ``channel``, the first listener subscribing the connection. ``deliver`` returns
  an awaitable (the send) or None; the hub awaits each in turn, so one socket's events stay in
  publication order. It must not block: it does bookkeeping and hands slow work (a database
  catch-up) to a task of its own. ``unlisten`` stops it; the last one unsubscribes.
- Reconnect: when the connection breaks, redis-py reconnects on the next read and subscribes
  every channel again in one SUBSCRIBE, but what was published meanwhile is gone. Redis runs
  that command before any other client's, so its first confirmation means every subscription is
  back: the hub then calls ``on_reconnect(hub)`` (chat/layers.py: every listener is told
  ``layer.reconnected`` and catches up from the database, the source of truth).
- Lifetime: the receiving task starts with the first subscription and runs until ``close()``,
  or until its event loop cancels it at shutdown; it closes the connection on its way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis import asyncio as aioredis

from ops import metrics
from realtime.sockets import ClientGone

log = logging.getLogger("parley.layer")

Deliver = Callable[[dict], Awaitable[None] | None]
YIELD_EVERY = 50  # sockets served between two returns to the event loop
POLL_SECONDS = 0.1  # the longest a read waits before looking at the subscriptions again
RETRY_SECONDS = 0.2  # between two attempts to read from a broken connection


class Hub:
    """The running event loop's subscriber connection and its listeners (see the module
    docstring). ``connect`` makes the client (infra.redis_client.subscriber_client),
    ``decode`` turns a published payload into the message dict."""

    def __init__(
        self,
        connect: Callable[[], aioredis.Redis],
        decode: Callable[[bytes], dict],
        on_reconnect: Callable[[Hub], None],
    ) -> None:
        self.connect = connect
        self.decode = decode
        self.on_reconnect = on_reconnect
        # channel -> {key: callback}: the local fan-out
        self.listeners: dict[str, dict[object, Deliver]] = {}
        self.subscribed: set[str] = set()
        self._lock = asyncio.Lock()  # one SUBSCRIBE/UNSUBSCRIBE at a time, and its bookkeeping
        self._client: aioredis.Redis | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self._receiver: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()  # broadcasts under way (asyncio keeps weak refs)

    async def listen(self, channel: str, key: object, deliver: Deliver) -> None:
        """Call ``deliver(message)`` for each message published on ``channel`` from now on."""
        self.listeners.setdefault(channel, {})[key] = deliver
        async with self._lock:
            if channel not in self.subscribed:
                await self._open().subscribe(channel)
                self.subscribed.add(channel)

    async def unlisten(self, channel: str, key: object) -> None:
        """Stop calling ``key``'s callback; unsubscribe when it was the channel's last one."""
        members = self.listeners.get(channel)
        if not members or members.pop(key, None) is None:
            return
        if members:
            return
        del self.listeners[channel]
        async with self._lock:  # re-checked under the lock: a listener may have come meanwhile
            if channel not in self.listeners and channel in self.subscribed:
                await self._open().unsubscribe(channel)
                self.subscribed.discard(channel)

    def broadcast(self, message: dict) -> None:
        """Hand ``message`` to every listener of every channel, in a task of its own."""
        if self.listeners:
            task = asyncio.ensure_future(self._fan_out(None, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def announce_reconnect(self) -> None:
        """What the hub does once its subscriptions are back after a failure: call
        ``on_reconnect``. Public so a test (or a shell) can play a reconnect."""
        self.on_reconnect(self)

    async def close(self) -> None:
        """Forget every listener and close the connection (a later ``listen`` opens anew)."""
        self.listeners.clear()
        receiver = self._receiver
        if receiver is not None:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
        await self._shut()

    # --- the connection ---------------------------------------------------------------------------
    def _open(self) -> aioredis.client.PubSub:
        if self._pubsub is None:
            self._client = self.connect()
            self._pubsub = self._client.pubsub()
        if self._receiver is None:
            self._receiver = asyncio.ensure_future(self._receive(self._pubsub))
        return self._pubsub

    async def _shut(self) -> None:
        client, pubsub = self._client, self._pubsub
        self._client = self._pubsub = self._receiver = None
        self.subscribed.clear()
        try:
            if pubsub is not None:
                await pubsub.aclose()
            if client is not None:
                await client.aclose()
        except Exception as exc:  # closing a broken connection: nothing more to do
            log.debug("closing the subscriber connection: %s", exc)

    async def _receive(self, pubsub: aioredis.client.PubSub) -> None:
        broken = False
        try:
            while True:
                try:
                    if not pubsub.subscribed:
                        await asyncio.sleep(POLL_SECONDS)
                        continue
                    message = await pubsub.get_message(timeout=POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        await self._dispatch(message)
                    elif broken and message["type"] == "subscribe":
                        broken = False
                        log.warning("Redis subscription restored; consumers will catch up")
                        self.announce_reconnect()
                except Exception as exc:
                    # Anything, timeouts included, must not end this task: the process would
                    # stay deaf to every channel for good.
                    if not broken:
                        log.warning("Redis subscription lost (%s); reconnecting", exc)
                    broken = True
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            if self._pubsub is pubsub:  # still the hub's connection: close it
                await self._shut()

    async def _dispatch(self, message: dict) -> None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        if channel not in self.listeners:
            return  # its last listener left; the UNSUBSCRIBE is on its way
        try:
            event = self.decode(message["data"])
        except Exception:
            log.exception("an undecodable message on %s was dropped", channel)
            return
        await self._fan_out(channel, event)

    async def _fan_out(self, channel: str | None, message: dict) -> None:
        """Run the callbacks of ``channel`` (None: of every channel) for ``message``."""
        if channel is None:
            callbacks = [d for members in self.listeners.values() for d in members.values()]
        else:
            callbacks = list(self.listeners.get(channel, {}).values())
        for i, deliver in enumerate(callbacks, 1):
            try:
                pending = deliver(message)
                if pending is not None:
                    await pending
            except ClientGone:
                pass  # its disconnect is on its way: the consumer cleans up then
            except Exception:  # one broken socket must not cost the others their events
                log.exception("a listener failed on %s", message.get("type"))
            if i % YIELD_EVERY == 0:
                # Back to the event loop now and then: its poll releases the GIL, so the
                # database threads (a post in progress) are not kept waiting for a whole
                # fan-out to 1,000 sockets, and other sockets' frames are read meanwhile.
                await asyncio.sleep(0)
        metrics.fanned_out(len(callbacks), message)  # once per fan-out, not per socket
