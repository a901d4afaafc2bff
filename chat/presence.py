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
own pair, as if it were alone (the outbox keeps the rows until Redis is back).
"""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from chat import online, outbox
from chat.models import Room
from contract import events, redis_keys
from infra.db import db

log = logging.getLogger("parley.presence")

SESSION_KEY_TTL = 86_400  # a presence session's id outlives any socket refresh by far

# KEYS: the user's sockets in the room, the presence session's id, this minute's session count.
# ARGV: socket session, now, expiry, set ttl, sessions per minute, session id ttl.
# Returns 1: record user.connected.
_OPEN = """
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
_CLOSE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) > 0 then return false end
local session = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[2])
return session
"""


def _keys(room: Room, user: AbstractBaseUser) -> tuple[str, str]:
    """The user's socket set and presence session in the room; the script's third key (the
    minute's session count) extends the first, so all three share one hash tag (Cluster)."""
    tag = f"presence:{room.pk}:{user.pk}"
    return redis_keys.tagged(tag, "sockets"), redis_keys.tagged(tag, "session")


async def socket_opened(*, user: AbstractBaseUser, room: Room, session: str) -> None:
    """A socket of ``user`` opened on ``room``: record ``user.connected`` if it starts the
    user's presence session there (and the session rate allows)."""
    sockets, session_key = _keys(room, user)
    now = time.time()
    try:
        started = await online.redis_client().eval(
            _OPEN,
            3,
            sockets,
            session_key,
            f"{sockets}:{int(now // 60)}",
            session,
            now,
            now + online.TTL_SECONDS,
            online.TTL_SECONDS * 2,
            settings.PARLEY["PRESENCE_SESSIONS_PER_MINUTE"],
            SESSION_KEY_TTL,
        )
    except (redis.RedisError, OSError) as exc:
        log.warning("presence not coalesced, Redis unreachable: %s", exc)
        started = True
    else:
        online.refresher().track_key(sockets, session)
    if started:
        await db(record_connection)(events.USER_CONNECTED, user=user, room=room, session=session)


async def socket_closed(*, user: AbstractBaseUser, room: Room, session: str) -> None:
    """A socket opened with ``socket_opened`` closed: record ``user.disconnected`` if it was
    the user's last socket in the room and their presence session was recorded."""
    sockets, session_key = _keys(room, user)
    online.refresher().untrack_key(sockets, session)
    try:
        ended = await online.redis_client().eval(
            _CLOSE, 2, sockets, session_key, session, time.time()
        )
    except (redis.RedisError, OSError) as exc:
        log.warning("presence not coalesced, Redis unreachable: %s", exc)
        ended = session
    if ended:
        ended = ended.decode() if isinstance(ended, bytes) else ended
        await db(record_connection)(events.USER_DISCONNECTED, user=user, room=room, session=ended)


def record_connection(type: str, *, user: AbstractBaseUser, room: Room, session: str) -> None:
    """Publish user.connected or user.disconnected (through the outbox, like every event)."""
    event = events.connection(
        type, room=room.slug, user=user.get_username(), session=session, ts=timezone.now()
    )
    with transaction.atomic():
        outbox.record(event, room_id=room.pk)
