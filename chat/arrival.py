"""A room socket's ephemeral bookkeeping, one Redis round trip on connect and one on disconnect.

A room socket's connect takes a place in its user's socket cap (chat.limits), opens its
presence (chat.presence: is it the user's first socket in the room?) and enters the room's
online set (chat.online). Made one after the other, that was three round trips and ~1.2 ms of
the event loop's CPU per connect in a storm. Here they are one pipeline (not a transaction):
the cap and the presence open are one script, whose keys share the user's Cluster slot, so a
socket over the cap opens no presence; the online set's update rides in the same pipeline, and
a refused socket's entry is taken out again at once (a second round trip, for refused sockets
only; no presence frame is sent for it). A disconnect is one pipeline likewise: the presence
close, the cap's place given back, the online set's update.

While Redis is unreachable each part fails open as it does on its own (each logs its warning):
the socket is admitted, records its own presence pair, and no presence frame is sent.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import redis
from django.contrib.auth.models import AbstractBaseUser

from chat import limits, online, presence
from chat.models import Room

# The cap's script, then (if admitted) the presence open's, each on its own keys and arguments.
# KEYS: ADMIT's one, OPEN's three. ARGV: ADMIT's five, OPEN's six.
# Returns 0: refused; 1: admitted; 2: admitted, record user.connected.
ADMIT_AND_OPEN = f"""
local admitted = (function(KEYS, ARGV)
{limits.ADMIT}
end)({{KEYS[1]}}, {{unpack(ARGV, 1, 5)}})
if admitted == 0 then return 0 end
return 1 + (function(KEYS, ARGV)
{presence.OPEN}
end)({{KEYS[2], KEYS[3], KEYS[4]}}, {{unpack(ARGV, 6, 11)}})
"""


@dataclass(frozen=True)
class Arrival:
    started: bool  # the socket starts its user's presence session: record user.connected
    others: bool | None  # some socket listens for the room's presence frames (None: unknown)


@dataclass(frozen=True)
class Departure:
    ended: str | None  # the presence session to record user.disconnected for
    others: bool | None


async def arrive(consumer, *, room: Room, session: str) -> Arrival | None:
    """The consumer's socket (its user authenticated, its access to ``room`` checked) opens
    with presence session ``session``; None if it is over its user's socket cap (the caller
    closes it). Sets ``consumer.socket_slot`` as ``limits.admit_socket`` does."""
    user: AbstractBaseUser = consumer.scope["user"]
    slot = uuid.uuid4().hex
    now = time.time()
    admit_keys, admit_args = limits.admit_call(user.pk, slot, now)
    open_keys, open_args = presence.open_call(user=user, room=room, session=session, now=now)
    member = online.member(user.get_username(), session)
    pipe = online.redis_client().pipeline(transaction=False)
    pipe.eval(ADMIT_AND_OPEN, 4, *admit_keys, *open_keys, *admit_args, *open_args)
    online.queue(pipe, room.pk, add=member)
    answer, *update = await _execute(pipe)
    failed = isinstance(answer, redis.RedisError | OSError)
    if not limits.admitted(consumer, slot, answer if failed else answer > 0):
        await online.forget(room.pk, member)
        return None
    started = presence.opened(
        user=user, room=room, session=session, started=answer if failed else answer == 2
    )
    return Arrival(started, online.listened(update))


async def depart(consumer, *, room: Room, session: str) -> Departure:
    """The socket that ``arrive`` admitted with ``session`` closes: its presence, its place in
    the cap (given back, as ``limits.release_socket`` does) and its online entry."""
    user: AbstractBaseUser = consumer.scope["user"]
    close_keys, close_args = presence.close_call(user=user, room=room, session=session)
    pipe = online.redis_client().pipeline(transaction=False)
    pipe.eval(presence.CLOSE, len(close_keys), *close_keys, *close_args)
    held = limits.give_back(consumer)
    if held is not None:
        pipe.zrem(*held)
    online.queue(pipe, room.pk, remove=online.member(user.get_username(), session))
    ended, *update = await _execute(pipe)
    if held is not None:
        limits.released(update.pop(0))
    return Departure(presence.closed(session=session, ended=ended), online.listened(update))


async def _execute(pipe) -> list:
    """Each command's result, or the error it met (all of them: Redis unreachable)."""
    count = len(pipe)
    try:
        return await pipe.execute(raise_on_error=False)
    except (redis.RedisError, OSError) as exc:
        return [exc] * count
