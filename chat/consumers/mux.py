"""``/ws/``: one socket, many rooms. The transport around one chat.delivery.RoomDelivery per room
the socket follows.

A client ``subscribe``s to rooms (``{"type": "subscribe", "room": slug, "after_seq": N,
"after_change": C}``, each resuming by the room socket's rule and answered with that room's
replay and ``sync.done``) and ``unsubscribe``s; ``message.send`` and ``sync`` name their room.
Each subscription is a ``Subscription``: chat.consumers.stream's ``RoomStream`` (the room
socket's live events, replays, access re-checks and posts) whose transport is this socket's,
every frame tagged with its room (contract.events ``in_room``; a live event's tagged frame is made
once per process and cached on the event, like its untagged one). Each listens on its room's
group (chat.layers) with its own callback, so a room's events reach only its subscription.

Per socket: the frame rate, the user's socket cap, the slow-reader rules (realtime.sending), the
credential (lost: close 4401) and ``PARLEY["MAX_SUBSCRIPTIONS"]``. Per room: access (lost: that
subscription ends with ``unsubscribed`` carrying the close code a room socket would get).
Presence and typing: per subscription, opted in with ``"presence": true`` (a room socket's
``?presence=1``): the subscription is online in the room and gets its presence and typing frames.
Unlike a room socket, a subscription records no durable presence events (chat.presence).
"""

from __future__ import annotations

import asyncio
import uuid

from django.conf import settings

from chat import access, limits, protocol, selectors
from chat.consumers.base import ListeningConsumer, chosen_subprotocol
from chat.consumers.signals import RoomSignals
from chat.consumers.stream import RoomStream
from chat.delivery import CATCH_UP, RoomDelivery
from chat.models import Room
from chat.selectors import RoomAccessError
from contract import events
from infra.db import db

NOT_FOUND = {4401: "not_authenticated", 4404: "room_not_found"}


class Subscription(RoomSignals, RoomStream):
    """One room followed by a multiplexed socket: its RoomStream, with the socket as transport,
    and its presence and typing when the subscribe asked for them (RoomSignals)."""

    session: str | None = None  # set when it opted in to presence: its entry among the online

    def __init__(self, socket: MuxConsumer, room: Room) -> None:
        self.socket = socket
        self.room = room
        self.room_id = room.pk
        self.slug = room.slug
        self.group = events.room_group(room.pk)
        self.delivery = RoomDelivery(keep=settings.PARLEY["REPLAY_PAGE_SIZE"])

    # --- what RoomStream asks of its host: the socket's, with the room added ------------------
    @property
    def scope(self) -> dict:
        return self.socket.scope

    @property
    def user_id(self) -> int | None:
        return self.socket.user_id

    @property
    def credential(self):
        return self.socket.credential

    @property
    def layer(self):
        return self.socket.layer

    def wants_signals(self) -> bool:
        return self.session is not None

    @property
    def client_gone(self) -> bool:
        return self.socket.client_gone

    @property
    def errors_in_a_row(self) -> int:
        return self.socket.errors_in_a_row

    @errors_in_a_row.setter
    def errors_in_a_row(self, value: int) -> None:
        self.socket.errors_in_a_row = value

    async def send(self, frame: str) -> None:
        await self.socket.send(events.in_room(frame, self.slug))

    def push(self, event: dict):
        """A live event's frame tagged with the room: made once per process (the event is this
        room's only), then written like any pre-made frame."""
        tagged = event.get("_in_room")
        if tagged is None:
            tagged = event["_in_room"] = {"frame": events.in_room(event["frame"], self.slug)}
        return self.socket.push(tagged)

    async def close(self, code: int) -> None:
        await self.socket.close(code=code)

    async def _refuse(self, code: str, detail: str, **extra: object) -> None:
        await self.socket._refuse(code, detail, room=self.slug, **extra)

    def _lose(self, code: int) -> None:
        """Access is gone (called without blocking): the credential's closes the socket, the
        room's ends this subscription."""
        if code == access.CLOSE_CREDENTIALS:
            self.socket._lose(code)
        elif not self.delivery.stopped:
            self.delivery.stop()
            self.socket.end_later(self, code)

    async def stop(self) -> None:
        """Stop listening, replaying and posting (the posts in flight are not answered)."""
        self.delivery.stop()
        await self.socket.layer.unlisten(self.group, self)
        if self.signals:
            await self.socket.layer.unlisten(self.signals, self)
        if self.online:
            await self._go_offline()
            self.online = False
        for task in (self.catch_up_task, self.acker):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        for _, future in self.delivery.inflight:
            future.cancel()


class MuxConsumer(ListeningConsumer):
    errors_in_a_row = 0
    access_events = 0  # access changes the gate handed over (a subscribe checks none was missed)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.subscriptions: dict[str, Subscription] = {}
        self.room_ids: set[int] = set()
        self.enders: set[asyncio.Task] = set()
        self.opened_ok = False

    async def connect(self) -> None:
        await self.accept(subprotocol=chosen_subprotocol(self.scope))
        if not self.scope["user"].is_authenticated:
            await self.close(code=access.CLOSE_CREDENTIALS, reason="authentication required")
            return
        if not await self.admitted():
            return
        await self._enter_gate()
        self.opened_ok = True
        await self.send(events.mux_ready(settings.PARLEY["MAX_SUBSCRIPTIONS"]))

    async def disconnect(self, code: int) -> None:
        await self._stop_listening()

    async def _stop_delivering(self) -> None:
        subscriptions = list(self.subscriptions.values())
        self.subscriptions, self.room_ids = {}, set()
        for sub in subscriptions:
            await sub.stop()

    async def _stop_listening(self) -> None:
        self._leave_gate()
        await self._stop_delivering()

    # --- access (chat.access), called by the gate (must not block) ----------------------------
    def access_changed(self, message: dict, *, definitive: bool) -> None:
        if definitive:
            self._lose(access.CLOSE_CREDENTIALS)
            return
        self.access_events += 1
        room_id = message.get("room_id")
        for sub in list(self.subscriptions.values()):
            if room_id is None or sub.room_id == room_id:
                if sub.delivery.access_changed() is CATCH_UP:
                    sub._start_catch_up()

    def _access_lost(self) -> None:
        for sub in self.subscriptions.values():
            sub.delivery.stop()

    def end_later(self, sub: Subscription, code: int) -> None:
        """End ``sub`` for lost access (called without blocking)."""
        task = asyncio.create_task(self._end(sub, code))
        self.enders.add(task)
        task.add_done_callback(self.enders.discard)

    async def _end(self, sub: Subscription, code: int | None) -> None:
        if self.subscriptions.get(sub.slug) is not sub:
            return  # already ended
        del self.subscriptions[sub.slug]
        self.room_ids.discard(sub.room_id)
        await sub.stop()
        if code is None:
            await sub.send(events.unsubscribed())
        else:
            await sub.send(events.unsubscribed(code, "room no longer readable"))

    # --- client frames ------------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.opened_ok or self.revoked:
            return  # refused at connect, or the credential was lost: the close is on its way
        retry_after = self.frame_retry_after()
        if retry_after is not None:  # over the socket's frame rate: not even parsed
            await self._refuse(
                "rate_limited", limits.rate_limited_detail(), retry_after=retry_after
            )
            return
        room = None
        try:
            frame = protocol.load_frame(text_data, bytes_data)
            room = frame.get("room") if isinstance(frame.get("room"), str) else None
            room, frame = protocol.mux_frame(frame)
        except protocol.ProtocolError as exc:
            await self._refuse(exc.code, exc.detail, room=room)
            return
        if isinstance(frame, protocol.Ping):
            await self._all_posts_answered()
            await self.send(events.in_room(events.pong(), None))
            return
        if isinstance(frame, protocol.Subscribe):
            await self._subscribe(frame)
            return
        sub = self.subscriptions.get(room)
        if sub is None:
            await self._refuse("not_subscribed", f"not subscribed to {room!r}", room=room)
        elif isinstance(frame, protocol.SendMessage):
            await sub._post(frame)
        elif isinstance(frame, protocol.Unsubscribe):
            await sub._posts_answered()
            await self._end(sub, None)
        elif isinstance(frame, protocol.Sync):
            await sub._posts_answered()
            sub.delivery.access_dirty = True  # a replay re-checks access first
            await sub._replay((frame.after_seq, frame.after_change), announce=True)
        elif sub.signals is not None:
            await sub._typing()
        else:
            detail = "typing needs a subscription with presence"
            await self._refuse("unsupported", detail, room=room)

    async def _subscribe(self, frame: protocol.Subscribe) -> None:
        """Follow a room: listen on its group, then replay from the position asked for (as a
        room socket's connection does), ending with ``sync.done``."""
        slug = frame.room
        if slug in self.subscriptions:
            await self._refuse("already_subscribed", f"already subscribed to {slug!r}", room=slug)
            return
        cap = settings.PARLEY["MAX_SUBSCRIPTIONS"]
        if len(self.subscriptions) >= cap:
            detail = f"at most {cap} rooms per socket"
            await self._refuse("too_many_subscriptions", detail, room=slug)
            return
        seen = self.access_events
        try:
            room = await db(selectors.room_for_user)(user=self.scope["user"], slug=slug)
        except RoomAccessError as exc:
            await self._refuse(NOT_FOUND.get(exc.code, "room_not_found"), exc.detail, room=slug)
            return
        if self.revoked or slug in self.subscriptions:
            return
        self.errors_in_a_row = 0
        sub = self.subscriptions[slug] = Subscription(self, room)
        self.room_ids.add(room.pk)
        if self.access_events != seen:  # an access change came while access was read
            sub.delivery.access_dirty = True  # the replay below re-checks first
        # Listen before reading the database, as the room socket does: an event committed from
        # here on arrives live, or is in the replay, or both (deduplicated).
        await self.layer.listen(sub.group, sub, sub._on_room_event)
        await sub._replay((frame.after_seq, frame.after_change), announce=True)
        if frame.presence and not sub.delivery.stopped:
            sub.session = uuid.uuid4().hex
            await sub._go_online()

    async def _all_posts_answered(self) -> None:
        for sub in list(self.subscriptions.values()):
            await sub._posts_answered()

    async def drain(self) -> None:
        """A graceful restart (ops.drain): answer the posts received so far, then close 1012."""
        await self._all_posts_answered()
        self.restarting = True
        await super().drain()

    async def _refuse(
        self, code: str, detail: str, *, room: str | None = None, **extra: object
    ) -> None:
        self.errors_in_a_row += 1
        await self.send(events.in_room(events.error(code, detail, **extra), room))
        if self.errors_in_a_row >= settings.PARLEY["FLOOD_CLOSE_AFTER_ERRORS"]:
            await self.close(code=protocol.CLOSE_FLOOD, reason="too many rejected frames")
