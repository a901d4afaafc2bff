"""The channel layer: channels-redis' pub/sub layer through its public API, and Parley's own
fan-out hub (chat/hub.py) for the sockets that listen with callbacks.

Why pub/sub: a ``group_send`` is one PUBLISH, and each server process receives it once on its
single subscriber connection, however many of its sockets are in the group (the default
channels-redis layer pushes one copy per socket through Redis and drops silently at capacity).

What this layer serves, and who serves it:
- channels' layer API (``send``, ``receive``, ``new_channel``, ``group_add``,
  ``group_discard``, ``group_send``, ``flush``) and ``serialize`` / ``deserialize``:
  channels-redis' ``RedisPubSubChannelLayer``, public methods only. Consumers with a channel of
  their own (the dashboard) and every ``group_send`` go through it.
- ``listen`` / ``unlisten``: room and ``/ws/me/`` sockets and the access gate register a
  callback for a group on this event loop's hub: one subscriber connection per process.
- ``layer.reconnected``: when the hub's subscription is restored after Redis came back, every
  listener receives ``{"type": "layer.reconnected"}`` and catches up from the database.
- ``group_channel_name()``: the Redis channel a group maps to, so the relay (its Lua script),
  broker/push.py and presence's subscriber count use exactly what ``group_send`` publishes on.

The one thing shared with channels-redis beyond its public API is its wire format: a group's
channel is ``<prefix>__group__<group>`` and a message is ``serialize(message)`` (msgpack). The
hub must subscribe where ``group_send`` publishes; channels-redis is bounded (<4.4) and
tests/chat/test_layers.py checks a ``group_send`` reaching a listener.
"""

from __future__ import annotations

from channels_redis.pubsub import RedisPubSubChannelLayer

from chat.hub import Deliver, Hub
from infra import redis_client
from infra.loops import per_loop

RECONNECTED = {"type": "layer.reconnected"}


def _announce(hub: Hub) -> None:
    hub.broadcast(RECONNECTED)


class ParleyChannelLayer:
    """``CHANNEL_LAYERS`` backend: ``url`` is ``REDIS_URL``, ``prefix`` names the channels."""

    extensions = ["groups", "flush"]

    def __init__(self, url: str, prefix: str = "asgi", **options) -> None:
        self.url = url
        self.prefix = prefix
        self.redis = RedisPubSubChannelLayer(
            hosts=[redis_client.channel_layer_host(url)], prefix=prefix, **options
        )
        self.hub = per_loop(self._new_hub)

    def _new_hub(self) -> Hub:
        return Hub(lambda: redis_client.subscriber_client(self.url), self.deserialize, _announce)

    # The running loop's hub, under the name channels-redis gave its per-loop layer (tests play
    # a reconnect with ``get_channel_layer()._get_layer().announce_reconnect()``).
    def _get_layer(self) -> Hub:
        return self.hub()

    def group_channel_name(self, group: str) -> str:
        """The Redis channel ``group_send(group, ...)`` publishes on (channels-redis' format)."""
        return f"{self.prefix}__group__{group}"

    # --- local fan-out: the hub ---------------------------------------------------------------
    async def listen(self, group: str, key: object, deliver: Deliver) -> None:
        """Call ``deliver(message)`` for each message sent to ``group`` from now on."""
        await self.hub().listen(self.group_channel_name(group), key, deliver)

    async def unlisten(self, group: str, key: object) -> None:
        """Stop calling ``key``'s callback; unsubscribe from Redis when it was the last one."""
        await self.hub().unlisten(self.group_channel_name(group), key)

    # --- channels' layer API: channels-redis --------------------------------------------------
    def serialize(self, message: dict) -> bytes:
        return self.redis.serialize(message)

    def deserialize(self, data: bytes) -> dict:
        return self.redis.deserialize(data)

    async def send(self, channel: str, message: dict) -> None:
        await self.redis.send(channel, message)

    async def receive(self, channel: str) -> dict:
        return await self.redis.receive(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        return await self.redis.new_channel(prefix)

    async def group_add(self, group: str, channel: str) -> None:
        await self.redis.group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self.redis.group_discard(group, channel)

    async def group_send(self, group: str, message: dict) -> None:
        await self.redis.group_send(group, message)

    async def flush(self) -> None:
        """channels' flush extension: forget channels, groups and listeners of this loop."""
        await self.redis.flush()
        await self.hub().close()
