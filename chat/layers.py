"""The channel layer: channels-redis' pub/sub layer, plus two things Parley needs from it.

Why pub/sub: a ``group_send`` is one PUBLISH, and each server process receives it once on its
single subscriber connection, however many of its sockets are in the group (the default
channels-redis layer pushes one copy per socket through Redis and drops silently at capacity).

What this subclass adds:
- Local fan-out (``listen`` / ``unlisten``): a socket registers a callback for a group instead of
  a channel of its own. An event then costs one Redis message and one deserialization per
  process, and each local socket costs one function call: no per-socket queue, task wake-up,
  msgpack decode or Redis SUBSCRIBE/UNSUBSCRIBE (channels' usual ``group_add`` pays all four,
  which made one process saturate between 100 and 500 listeners and stall for seconds when
  1,000 sockets closed at once). A callback returns an awaitable (the send) or None; the
  receiving task awaits each in turn, so one socket's events stay in publication order. A
  callback must not block: it does bookkeeping and hands slow work (a database catch-up) to a
  task of its own.
- ``group_channel_name()``: the Redis channel a group maps to, so the relay can PUBLISH from its
  Lua script exactly what ``group_send`` would.
- A reconnect announcement. When Redis restarts, the layer re-subscribes by itself, but whatever
  was published while it was away is gone and nobody is told. After the re-subscription is
  confirmed, every local channel and every listener receives ``{"type": "layer.reconnected"}``
  so its consumer can catch up from the database (the source of truth). Written against
  channels-redis 4.3.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close

from config.sockets import ClientGone
from ops import metrics

log = logging.getLogger("parley.layer")

RECONNECTED = {"type": "layer.reconnected"}

Deliver = Callable[[dict], Awaitable[None] | None]
YIELD_EVERY = 50  # sockets served between two returns to the event loop


class ParleyChannelLayer(RedisPubSubChannelLayer):
    def group_channel_name(self, group: str) -> str:
        prefix = self._kwargs.get("prefix", "asgi")
        return f"{prefix}__group__{group}"

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
            return layer


class _LoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shards = [_Shard(shard.host, self) for shard in self._shards]
        # group channel -> {key: callback}: the local fan-out (see the module docstring)
        self.listeners: dict[str, dict[object, Deliver]] = {}
        self._reconnect_tasks: set[asyncio.Task] = set()

    async def listen(self, group: str, key: object, deliver: Deliver) -> None:
        """Call ``deliver(message)`` for each message sent to ``group`` from now on."""
        name = self._get_group_channel_name(group)
        self.listeners.setdefault(name, {})[key] = deliver
        await self._get_shard(name).subscribe(name)

    async def unlisten(self, group: str, key: object) -> None:
        """Stop calling ``key``'s callback; unsubscribe from Redis when it was the last one."""
        name = self._get_group_channel_name(group)
        members = self.listeners.get(name)
        if not members or members.pop(key, None) is None:
            return
        if not members:
            del self.listeners[name]
            await self._get_shard(name).unsubscribe_unless_used(name)

    def announce_reconnect(self) -> None:
        message = self.channel_layer.serialize(RECONNECTED)
        for queue in self.channels.values():
            queue.put_nowait(message)
        if self.listeners:
            task = asyncio.ensure_future(self._fan_out(None, RECONNECTED))
            self._reconnect_tasks.add(task)
            task.add_done_callback(self._reconnect_tasks.discard)

    async def _fan_out(self, name: str | None, message: dict) -> None:
        """Run the callbacks of group channel ``name`` (None: of every group) for ``message``."""
        if name is None:
            callbacks = [d for members in self.listeners.values() for d in members.values()]
        else:
            callbacks = list(self.listeners.get(name, {}).values())
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


class _Shard(RedisSingleShardConnection):
    async def unsubscribe_unless_used(self, name: str) -> None:
        async with self._lock:  # re-checked under the lock: a listener may have come meanwhile
            used = name in self.channel_layer.listeners or name in self.channel_layer.groups
            if not used and name in self._subscribed_to:
                self._ensure_redis()
                self._ensure_receiver()
                await self._pubsub.unsubscribe(name)
                self._subscribed_to.remove(name)

    async def _dispatch(self, message: dict) -> None:
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        layer = self.channel_layer  # upstream's name for the per-loop layer
        if name in layer.listeners:
            await layer._fan_out(name, layer.channel_layer.deserialize(message["data"]))
        else:
            self._receive_message(message)

    async def _do_receiving(self) -> None:
        broken = False
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(timeout=0.1)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        await self._dispatch(message)
                    elif broken and message["type"] == "subscribe":
                        # Redis runs one SUBSCRIBE command (redis-py re-subscribes every
                        # channel in one) before any other client's command, so the first
                        # confirmation means every subscription is back.
                        broken = False
                        log.warning("Redis subscription restored; consumers will catch up")
                        self.channel_layer.announce_reconnect()
                else:
                    await asyncio.sleep(0.1)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                # Anything else, timeouts included, must not end this task: the process would
                # stay deaf to every group for good (upstream re-raises timeouts).
                if not broken:
                    log.warning("Redis subscription lost (%s); reconnecting", exc)
                broken = True
                await asyncio.sleep(0.2)
