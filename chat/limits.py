"""Bounds on what one client can make a server do: frames per socket, sockets per user.

Frames: every client frame of a socket (posts, pings, syncs, typing, invalid frames alike)
counts against ``PARLEY["RATE_LIMIT_FRAMES"]`` per ``PARLEY["RATE_LIMIT_WINDOW_SECONDS"]``, a
fixed window kept in the socket itself (a counter and a monotonic clock: no Redis, no
allocation, per frame). A frame over the rate is not parsed: it is answered with a
``rate_limited`` error frame carrying ``retry_after`` (seconds) and counts as a rejected frame,
so a client that goes on is closed with 4429 like any flood.

Sockets: each user holds at most ``PARLEY["MAX_SOCKETS_PER_USER"]`` room and ``/ws/me/``
sockets across every server process. The user's sockets are a Redis sorted set of socket ids
scored by their expiry; the process' presence refresher (chat.online) keeps its sockets'
entries alive, so the entries of a killed process expire after ``online.TTL_SECONDS``. A
socket over the cap is closed with ``CLOSE_TOO_MANY_SOCKETS`` right after the handshake. While
Redis is unreachable the cap is not enforced (as the post rate limit): sockets still open.

Sign-ups: at most ``PARLEY["SIGNUPS_PER_HOUR"]`` attempts per client address (Redis counters of
chat.ratelimit, all processes; fail-open).
"""

from __future__ import annotations

import logging
import math
import time
import uuid

import redis
from django.conf import settings

from chat import online, ratelimit
from contract import redis_keys

log = logging.getLogger("parley.limits")

CLOSE_TOO_MANY_SOCKETS = 4409
SIGNUP_WINDOW_SECONDS = 3600

# Drop the user's expired entries, then add this socket if the user is under the cap.
# KEYS[1] the user's set; ARGV: socket id, now, expiry, cap, key ttl. Returns 1 if admitted.
ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class FrameRate:
    """Mixin of a consumer: the per-socket frame budget. Class-level defaults, so an idle
    socket carries no state of it; its first frame sets the instance's own. The settings are
    read once per window, so a frame costs a clock read, a comparison and a decrement."""

    frame_window_ends = 0.0
    frames_left = 0  # in this window; below zero, how many frames went over

    def frame_retry_after(self) -> int | None:
        """Count one client frame. None when it is within the socket's rate; else the whole
        seconds until the window ends (at least 1), for the ``rate_limited`` error."""
        now = time.monotonic()
        if now >= self.frame_window_ends:
            parley = settings.PARLEY
            self.frame_window_ends = now + parley["RATE_LIMIT_WINDOW_SECONDS"]
            self.frames_left = parley["RATE_LIMIT_FRAMES"] - 1
            return None
        self.frames_left -= 1
        if self.frames_left >= 0:
            return None
        return max(1, math.ceil(self.frame_window_ends - now))

    def frame_flood(self) -> bool:
        """Whether the socket went on past its rate by ``FLOOD_CLOSE_AFTER_ERRORS`` frames in
        this window: close it (4429)."""
        return -self.frames_left >= settings.PARLEY["FLOOD_CLOSE_AFTER_ERRORS"]


def rate_limited_detail() -> str:
    return (
        f"more than {settings.PARLEY['RATE_LIMIT_FRAMES']} frames in "
        f"{settings.PARLEY['RATE_LIMIT_WINDOW_SECONDS']} s on this socket"
    )


def sockets_key(user_id: int) -> str:
    """The user's sockets (a key without braces hashes whole: chat.presence tags its keys with
    this name, so they share its Cluster slot)."""
    return redis_keys.key("sockets", user_id)


def admit_call(user_id: int, slot: str, now: float) -> tuple[list[str], list]:
    """The keys and arguments of ``ADMIT`` for a socket of ``user_id`` taking place ``slot``."""
    args = [slot, now, now + online.TTL_SECONDS, settings.PARLEY["MAX_SOCKETS_PER_USER"]]
    return [sockets_key(user_id)], [*args, online.TTL_SECONDS * 2]


def admitted(consumer, slot: str, answer: object) -> bool:
    """Whether the consumer's socket may stay open, given what ``ADMIT`` answered for ``slot``
    (or the Redis error met instead: the cap is not enforced then). Sets
    ``consumer.socket_slot`` (what ``release_socket`` gives back) when admitted by Redis."""
    if isinstance(answer, redis.RedisError | OSError):
        log.warning("socket cap not enforced, Redis unreachable: %s", answer)
        return True
    if not answer:
        return False
    user_id = consumer.scope["user"].pk
    consumer.socket_slot = (user_id, slot)
    online.refresher().track_key(sockets_key(user_id), slot)
    return True


async def admit_socket(consumer) -> bool:
    """Count the consumer's socket against its user's cap; True if it may stay open (see
    ``admitted``). Call after authentication; the caller closes a refused socket."""
    slot = uuid.uuid4().hex
    keys, args = admit_call(consumer.scope["user"].pk, slot, time.time())
    try:
        answer = await online.redis_client().eval(ADMIT, len(keys), *keys, *args)
    except (redis.RedisError, OSError) as exc:
        answer = exc
    return admitted(consumer, slot, answer)


def give_back(consumer) -> tuple[str, str] | None:
    """The socket's place (key, member) to remove from its user's set, no longer kept alive;
    None for a socket that holds none. Gives it once."""
    held = getattr(consumer, "socket_slot", None)
    if held is None:
        return None
    consumer.socket_slot = None
    user_id, slot = held
    online.refresher().untrack_key(sockets_key(user_id), slot)
    return sockets_key(user_id), slot


def released(result: object) -> None:
    """Log what the removal of a socket's place met, if Redis was unreachable."""
    if isinstance(result, redis.RedisError | OSError):
        log.warning("socket slot not released (it expires), Redis unreachable: %s", result)


async def release_socket(consumer) -> None:
    """Give the socket's place back (no-op for a socket that holds none). Runs once."""
    held = give_back(consumer)
    if held is None:
        return
    try:
        await online.redis_client().zrem(*held)
    except (redis.RedisError, OSError) as exc:
        released(exc)


def allow_signup(address: str) -> bool:
    """Count one sign-up attempt from ``address``; False when over the hourly limit."""
    return ratelimit.allow(
        "signup",
        address,
        limit=settings.PARLEY["SIGNUPS_PER_HOUR"],
        window=SIGNUP_WINDOW_SECONDS,
    )
