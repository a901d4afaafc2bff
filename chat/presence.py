"""Connection events: a user arriving in or leaving a room (topic chat.presence), durable.

Sockets come and go far more often than people do (tabs, reconnects, a client in a loop), and
every recorded event is an outbox row, a stream entry and an analytics record. So a user's
sockets in a room are coalesced into one *presence session*: ``user.connected`` is recorded
when the first of them opens and ``user.disconnected``, with the same ``session``, when the last
one closes. And at most ``PARLEY["PRESENCE_SESSIONS_PER_MINUTE"]`` sessions of a user in a room
start per minute: beyond that a session is not recorded at all (neither event), so churn writes
a bounded number of rows.

The user's open sockets in the room are a Redis sorted set of socket sessions scored by their
expiry, kept alive by the process' refresher (chat.online), so the sockets of a killed process
stop counting after ``online.TTL_SECONDS``. While Redis is unreachable each socket records its
own pair, as if it were alone (the outbox keeps the rows until Redis is back). A room socket
runs the scripts in its connect's and disconnect's one Redis round trip (chat.arrival).

The events of all the process' sockets are written in batches (infra.batches), as posts are:
a connect storm's rows take one database hop, one transaction and one relay flush per room
per batch, where each used to take its own. A socket's events keep their order.
"""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from chat import limits, online, outbox
from chat.models import Room
from contract import events, redis_keys
from infra.batches import Batcher
from infra.loops import per_loop

log = logging.getLogger("parley.presence")

SESSION_KEY_TTL = 86_400  # a presence session's id outlives any socket refresh by far

# KEYS: the user's sockets in the room, the presence session's id, this minute's session count.
# ARGV: socket session, now, expiry, set ttl, sessions per minute, session id ttl.
# Returns 1: record user.connected.
OPEN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local first = redis.call('ZCARD', KEYS[1]) == 0
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if not first then return 0 end
local started = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], 120)
if started > tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[2])
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[6])
return 1
"""

# KEYS: as above (two). ARGV: socket session, now. The presence session to close, or false.
CLOSE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) > 0 then return false end
local session = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[2])
return session
"""


def _keys(room: Room, user: AbstractBaseUser) -> tuple[str, str]:
    """The user's socket set and presence session in the room; the open script's third key (the
    minute's session count) extends the first. All three are tagged with the user's socket-cap
    key (chat.limits), so they share its Cluster slot: a room socket's connect is admitted and
    opens its presence in one script (chat.arrival)."""
    tag = limits.sockets_key(user.pk)
    return (
        redis_keys.tagged(tag, "presence", room.pk, "sockets"),
        redis_keys.tagged(tag, "presence", room.pk, "session"),
    )


def open_call(
    *, user: AbstractBaseUser, room: Room, session: str, now: float
) -> tuple[list[str], list]:
    """The keys and arguments of ``OPEN`` for a socket of ``user`` opening on ``room``."""
    sockets, session_key = _keys(room, user)
    keys = [sockets, session_key, f"{sockets}:{int(now // 60)}"]
    args = [
        session,
        now,
        now + online.TTL_SECONDS,
        online.TTL_SECONDS * 2,
        settings.PARLEY["PRESENCE_SESSIONS_PER_MINUTE"],
        SESSION_KEY_TTL,
    ]
    return keys, args


def opened(*, user: AbstractBaseUser, room: Room, session: str, started: object) -> bool:
    """Whether to record ``user.connected``, given what ``OPEN`` answered (or the Redis error
    met instead: then the socket records its own pair). Keeps the socket's entry alive."""
    if isinstance(started, redis.RedisError | OSError):
        log.warning("presence not coalesced, Redis unreachable: %s", started)
        return True
    online.refresher().track_key(_keys(room, user)[0], session)
    return bool(started)


def close_call(*, user: AbstractBaseUser, room: Room, session: str) -> tuple[list[str], list]:
    """The keys and arguments of ``CLOSE`` for that socket closing; stops keeping its entry
    alive."""
    sockets, session_key = _keys(room, user)
    online.refresher().untrack_key(sockets, session)
    return [sockets, session_key], [session, time.time()]


def closed(*, session: str, ended: object) -> str | None:
    """The presence session to record ``user.disconnected`` for, given what ``CLOSE`` answered
    (or the Redis error met instead: then the socket's own session)."""
    if isinstance(ended, redis.RedisError | OSError):
        log.warning("presence not coalesced, Redis unreachable: %s", ended)
        return session
    return ended.decode() if isinstance(ended, bytes) else ended


Connection = tuple[str, AbstractBaseUser, Room, str]  # (event type, user, room, session)


async def record(type: str, *, user: AbstractBaseUser, room: Room, session: str) -> None:
    """Record user.connected or user.disconnected with this process' other sockets' (a batch:
    one database hop, one transaction, one relay flush per room); returns once committed.
    A socket's events are recorded in the order it records them."""
    await batcher().submit((type, user, room, session))


def record_connections(connections: list[Connection]) -> list[None]:
    """Publish the connection events (through the outbox, like every event), in their order:
    one transaction, one ``outbox.record`` per room."""
    by_room: dict[int, list[events.Event]] = {}
    now = timezone.now()
    for type, user, room, session in connections:
        event = events.connection(
            type, room=room.slug, user=user.get_username(), session=session, ts=now
        )
        by_room.setdefault(room.pk, []).append(event)
    with transaction.atomic():
        for room_id, recorded in by_room.items():
            outbox.record(*recorded, room_id=room_id)
    return [None] * len(connections)


def record_connection(type: str, *, user: AbstractBaseUser, room: Room, session: str) -> None:
    """One connection event, recorded as a batch of one (tests, tools)."""
    record_connections([(type, user, room, session)])


# This event loop's batcher of connection events (one per server process).
batcher = per_loop(lambda: Batcher(record_connections))
