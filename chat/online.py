"""Who is online in a room and who is typing: ephemeral, never persisted, best effort.

Presence is a Redis sorted set per room; each member is "<username>|<session>" scored with the
time it expires. A socket writes its entry on connect, the process' refresher rewrites all
its entries every ``REFRESH_SECONDS``, and a socket removes its entry on disconnect; the entry
of a socket whose process died expires after ``TTL_SECONDS``. Whenever a socket arrives or
leaves and some socket listens on the room's signals group (Redis' subscriber count of its
channel, read in the same round trip), the list is read once and sent to that group as one
pre-serialized frame; when nobody listens, nothing is read or sent.

Sockets opt in to these frames with ``?presence=1`` (the signals group), so clients that only
want messages see exactly the frames they always did.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis
from channels.layers import get_channel_layer

from contract import redis_keys
from infra import redis_client as redis_clients
from infra.loops import per_loop

log = logging.getLogger("parley.online")

TTL_SECONDS = 60
REFRESH_SECONDS = 25
TYPING_EVERY_SECONDS = 2.0  # a socket's typing signals are forwarded at most this often


def signals_group(room_id: int) -> str:
    return f"room.{room_id}.signals"


def _signals_channel(room_id: int) -> str:
    """The Redis channel of the signals group: its subscriber count says whether any process
    has a socket that wants presence frames."""
    return get_channel_layer().group_channel_name(signals_group(room_id))


def _key(room_id: int) -> str:
    return redis_keys.key("online", room_id)


# This event loop's client for ephemeral state (presence, socket counts): infra/redis_client.py.
redis_client = redis_clients.ephemeral_client


async def enter(
    room_id: int, username: str, session: str, *, listening: bool = False
) -> list[str] | None:
    """Mark the socket online. Returns the room's online usernames when some socket listens
    for presence frames (``listening``: this one does); None when nobody does (or Redis is
    unreachable): no frame to send."""
    return await _update(room_id, add=f"{username}|{session}", listening=listening)


class _Refresher:
    """Keeps this process' expiring entries alive: one task and one pipelined write every
    ``REFRESH_SECONDS`` for all its sockets (a task per socket cost a coroutine and its
    wake-ups per socket). Entries are members of Redis sorted sets scored by their expiry:
    the rooms' presence sets, and any other set of the same shape (``track_key``: the
    per-user socket sets of chat.limits and chat.presence)."""

    def __init__(self) -> None:
        self.members: dict[str, set[str]] = {}
        self.task: asyncio.Task | None = None

    def track(self, room_id: int, member: str) -> None:
        self.track_key(_key(room_id), member)

    def untrack(self, room_id: int, member: str) -> None:
        self.untrack_key(_key(room_id), member)

    def track_key(self, key: str, member: str) -> None:
        """Keep ``member`` of the sorted set ``key`` alive until ``untrack_key``."""
        self.members.setdefault(key, set()).add(member)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    def untrack_key(self, key: str, member: str) -> None:
        members = self.members.get(key)
        if members is not None:
            members.discard(member)
            if not members:
                del self.members[key]

    async def _run(self) -> None:
        while self.members:
            await asyncio.sleep(REFRESH_SECONDS)
            await self.refresh()

    async def refresh(self) -> None:
        """Push every tracked entry's expiry forward: writes only, nothing read back."""
        expires = time.time() + TTL_SECONDS
        try:
            pipe = redis_client().pipeline(transaction=False)
            for key, members in list(self.members.items()):
                pipe.zadd(key, dict.fromkeys(members, expires))
                pipe.expire(key, TTL_SECONDS * 2)
            await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("presence not refreshed, Redis unreachable: %s", exc)


# This event loop's refresher (one per server process).
refresher = per_loop(_Refresher)


def member(username: str, session: str) -> str:
    return f"{username}|{session}"


async def leave(room_id: int, username: str, session: str) -> list[str] | None:
    return await _update(room_id, remove=f"{username}|{session}")


def queue(pipe, room_id: int, *, add: str | None = None, remove: str | None = None) -> int:
    """Add the update of the room's set to ``pipe`` (a pipeline, not a transaction): how many
    results it adds. The last of them is for ``listened``."""
    now = time.time()
    if add:
        pipe.zadd(_key(room_id), {add: now + TTL_SECONDS})
    if remove:
        pipe.zrem(_key(room_id), remove)
    pipe.zremrangebyscore(_key(room_id), "-inf", now)
    pipe.expire(_key(room_id), TTL_SECONDS * 2)
    pipe.pubsub_numsub(_signals_channel(room_id))
    return 4


def listened(results: list) -> bool | None:
    """Whether some process has a socket listening for the room's presence frames, from the
    results of a ``queue``; None if the update met an error (Redis unreachable)."""
    for result in results:
        if isinstance(result, redis.RedisError | OSError):
            log.warning("presence not updated, Redis unreachable: %s", result)
            return None
    [(_, others)] = results[-1]
    return bool(others)


async def listed(room_id: int, *, others: bool | None, listening: bool) -> list[str] | None:
    """The room's online usernames when some socket wants them (``others`` listening, per
    ``listened``, or this one); None when nobody does (or Redis is unreachable)."""
    if others is None or not (listening or others):
        return None  # nobody opted in to presence frames: don't read the set
    try:
        members = await redis_client().zrange(_key(room_id), 0, -1)
    except (redis.RedisError, OSError) as exc:
        log.warning("presence not updated, Redis unreachable: %s", exc)
        return None
    return sorted({m.decode().rsplit("|", 1)[0] for m in members})


async def _update(
    room_id: int, *, add: str | None = None, remove: str | None = None, listening: bool = False
):
    pipe = redis_client().pipeline(transaction=False)
    queue(pipe, room_id, add=add, remove=remove)
    try:
        results = await pipe.execute()
    except (redis.RedisError, OSError) as exc:
        results = [exc]
    return await listed(room_id, others=listened(results), listening=listening)


async def forget(room_id: int, member: str) -> None:
    """Take ``member`` out of the room's set at once, telling nobody (a socket refused right
    after it entered: chat.arrival)."""
    try:
        await redis_client().zrem(_key(room_id), member)
    except (redis.RedisError, OSError) as exc:
        log.warning("presence entry not removed (it expires), Redis unreachable: %s", exc)
