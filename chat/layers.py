"""The channel layer: channels-redis' pub/sub layer, plus two things Parley needs from it.

Why pub/sub: a ``group_send`` is one PUBLISH, and each server process receives it once on its
single subscriber connection, however many of its sockets are in the group (the default
channels-redis layer pushes one copy per socket through Redis and drops silently at capacity).

What this subclass adds:
- ``group_channel_name()``: the Redis channel a group maps to, so the relay can PUBLISH from its
  Lua script exactly what ``group_send`` would.
- A reconnect announcement. When Redis restarts, the layer re-subscribes by itself, but whatever
  was published while it was away is gone and nobody is told. After the re-subscription is
  confirmed, every local channel receives ``{"type": "layer.reconnected"}`` so its consumer can
  catch up from the database (the source of truth). Written against channels-redis 4.3.
"""

from __future__ import annotations

import asyncio
import logging

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close

log = logging.getLogger("parley.layer")

RECONNECTED = {"type": "layer.reconnected"}


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

    def announce_reconnect(self) -> None:
        message = self.channel_layer.serialize(RECONNECTED)
        for queue in self.channels.values():
            queue.put_nowait(message)


class _Shard(RedisSingleShardConnection):
    async def _do_receiving(self) -> None:
        broken = False
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(timeout=0.1)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        self._receive_message(message)
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
