"""Pushing an ephemeral message to a Channels group from synchronous code (workers, views).

It does exactly what ``group_send`` does on the pub/sub layer — one PUBLISH of the serialized
message on the group's channel — without an event loop. For hints to open pages only (a
mention, fresh dashboard figures); anything that must not be lost goes through the outbox.
"""

from __future__ import annotations

import redis
from channels.layers import get_channel_layer

from contract import events
from infra.redis_client import get_redis


def push_to_group(group: str, message: dict, client: redis.Redis | None = None) -> None:
    """Raises redis.RedisError if Redis is unreachable."""
    layer = get_channel_layer()
    (client or get_redis()).publish(layer.group_channel_name(group), layer.serialize(message))


def signal(group: str, frame: str) -> bool:
    """Push a pre-serialized WebSocket frame to a group's sockets; False if Redis is down."""
    try:
        push_to_group(group, events.signal_message(frame))
    except redis.RedisError:
        return False
    return True


def has_listeners(group: str) -> bool:
    """Whether any server process listens on ``group`` now (PUBSUB NUMSUB of its channel): a
    push nobody would receive need not be computed. True when Redis cannot tell (the push
    then reports the outage itself)."""
    try:
        [(_, count)] = get_redis().pubsub_numsub(get_channel_layer().group_channel_name(group))
    except redis.RedisError:
        return True
    return count > 0
