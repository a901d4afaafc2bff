"""``/ws/rooms/<slug>/``: the room socket, the transport around a chat.delivery.RoomDelivery.

The delivery decides (no I/O): which live event to send, drop or hold, when to catch up from
the database, what a replay sends and in which pages, when a post's ack goes out and what it
releases. This consumer does what it says: it reads frames and calls actions, runs replays
and acks as tasks, queries the database (``infra.db``) and sends; the room's half of that
(live events, replays, access re-checks, posts) is chat.consumers.stream's ``RoomStream``,
which ``/ws/`` reuses for each room it follows.

Live events do not pass through a channel of the socket's own: the socket *listens* on its
room's group (chat.layers), and the layer's receiving task calls ``_on_room_event`` for each
local socket with the event decoded once per process; the frame is already serialized, so a
socket's share is a few comparisons and one send. Replays (connect, ``sync``, a gap, a Redis
reconnect, an access re-check) run one at a time (``replay_lock``); posts are answered in
order by one task (``_ack``).
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings

from chat import access, arrival, connecting, limits, presence, protocol, selectors
from chat.consumers.base import ListeningConsumer, chosen_subprotocol, query_value
from chat.consumers.signals import RoomSignals
from chat.consumers.stream import RoomStream
from chat.delivery import CATCH_UP, RoomDelivery
from chat.models import Room
from chat.selectors import RoomAccessError
from contract import events
from infra.db import db

log = logging.getLogger("parley.ws")


class RoomConsumer(RoomSignals, RoomStream, ListeningConsumer):
    group: str | None = None
    session: str | None = None

    async def connect(self) -> None:
        # Accept before refusing: a close code sent during the handshake never reaches the
        # client (the server answers HTTP 403 instead), and clients need the code to decide.
        await self.accept(subprotocol=chosen_subprotocol(self.scope))
        if not await self.take_turn():
            return  # the client left while waiting: its disconnect is handled next
        try:
            await self._open()
        finally:
            self.end_turn()

    async def _open(self) -> None:
        """The connect's work: access, the socket cap, listening, presence and the replay."""
        # A new delivery replays first (below): an access change from the gate meanwhile is
        # only noted, and the replay re-checks access before sending anything.
        self.delivery = RoomDelivery(keep=settings.PARLEY["REPLAY_PAGE_SIZE"])
        if self.scope["user"].is_authenticated:
            await self._enter_gate()
        slug = self.scope["url_route"]["kwargs"]["slug"]
        try:
            resume = (self._query_seq("after_seq"), self._query_seq("after_change"))
            room, ahead = await self._find_room(slug, resume)
        except RoomAccessError as exc:
            self.room_id = None  # refused: no frame of the client's is handled
            connecting.forget(slug)
            await self.close(code=exc.code, reason=exc.detail)
            return
        except protocol.ProtocolError as exc:
            await self.close(code=protocol.CLOSE_BAD_REQUEST, reason=exc.detail)
            return
        if not await self.admitted(self._arrive(room)):
            self.room_id = None
            return
        connecting.learn(slug, room.pk)
        self.room = room
        self.room_id = room.pk
        if self.arrival.started:
            await self._record_presence(events.USER_CONNECTED, self.session)
        await self._replay(resume, announce=True, ahead=ahead)
        await self._go_online()

    async def _find_room(
        self, slug: str, resume: tuple[int | None, int | None]
    ) -> tuple[Room, connecting.ReadAhead | None]:
        """The room, once access is checked, listened on; and, when the room's id was known,
        its position and first replay pages, read in the same hop (chat.connecting).

        Listen before reading the position: an event committed from then on arrives live, or
        is in the replay, or both (deduplicated). Until the replay is done, live events are
        kept for after it (chat.delivery): none is sent before access is checked."""
        user = self.scope["user"]
        guessed = connecting.guess(slug) if user.is_authenticated else None
        if guessed is not None:
            # The gate hands this room's access changes to the socket from now on (the replay
            # re-checks before sending anything): none committed after the read below is missed.
            self.room_id = guessed
            await self._listen(guessed)
            room, ahead = await db(connecting.open_room)(
                user=user,
                slug=slug,
                guessed=guessed,
                after_seq=resume[0],
                after_change=resume[1],
                page_size=settings.PARLEY["REPLAY_PAGE_SIZE"],
            )
            if ahead is not None:
                return room, ahead
            # Another room has the slug now: what was noted so far was the other room's.
            self.room_id = room.pk
            await self.layer.unlisten(self.group, self)
            self.group = None
            wrong = self.delivery
            self.delivery = RoomDelivery(keep=wrong.keep)
            self.delivery.access_dirty = wrong.access_dirty
            if wrong.stopped:
                self.delivery.stop()
        else:
            room = await db(selectors.room_for_user)(user=user, slug=slug)
        await self._listen(room.pk)
        return room, None

    async def _listen(self, room_id: int) -> None:
        self.group = events.room_group(room_id)
        await self.layer.listen(self.group, self, self._on_room_event)

    async def disconnect(self, code: int) -> None:
        await self._stop_listening()
        if self.session:
            departure = await arrival.depart(self, room=self.room, session=self.session)
            if departure.ended:
                await self._record_presence(events.USER_DISCONNECTED, departure.ended)
            await self._go_offline(departure)

    async def _stop_delivering(self) -> None:
        if self.group:
            await self.layer.unlisten(self.group, self)
        if self.signals:
            await self.layer.unlisten(self.signals, self)

    async def _stop_listening(self) -> None:
        self._leave_gate()
        await self._stop_delivering()
        if self.catch_up_task:
            self.catch_up_task.cancel()
        if self.acker:
            self.acker.cancel()
        if self.delivery is not None:  # the batch writer skips them; nobody awaits them now
            for _, future in self.delivery.inflight:
                future.cancel()

    async def _arrive(self, room) -> bool:
        # The socket cap, presence coalescing and the online set: one Redis round trip.
        session = uuid.uuid4().hex
        self.arrival = await arrival.arrive(self, room=room, session=session)
        if self.arrival is None:
            return False
        self.session = session
        return True

    async def _record_presence(self, type: str, session: str) -> None:
        # Coalesced per user and room, and rated (chat.presence): churn writes bounded rows.
        await presence.record(type, user=self.scope["user"], room=self.room, session=session)

    # --- access changes (chat.access), called by the gate (must not block) -----------------------
    def access_changed(self, message: dict, *, definitive: bool) -> None:
        """Deliver nothing until access is re-checked (by a replay: live events meanwhile are
        kept, and sent or caught up on if access still holds)."""
        if definitive:
            self._lose(access.CLOSE_CREDENTIALS)
        elif self.delivery.access_changed() is CATCH_UP:
            self._start_catch_up()

    def _access_lost(self) -> None:
        self.delivery.stop()

    # --- client frames ---------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.room_id is None or self.revoked:
            return  # refused at connect, or access lost: the close is on its way
        retry_after = self.frame_retry_after()
        if retry_after is not None:  # over the socket's frame rate: not even parsed
            await self._refuse(
                "rate_limited", limits.rate_limited_detail(), retry_after=retry_after
            )
            return
        try:
            frame = protocol.parse_client_frame(text_data, bytes_data)
        except protocol.ProtocolError as exc:
            await self._refuse(exc.code, exc.detail)
            return
        if isinstance(frame, protocol.SendMessage):
            await self._post(frame)
            return
        self.errors_in_a_row = 0
        if isinstance(frame, protocol.Typing):
            await self._typing()
            return
        await self._posts_answered()  # frames after posts are answered after them
        if isinstance(frame, protocol.Sync):
            self.delivery.access_dirty = True  # a replay re-checks access first
            await self._replay((frame.after_seq, frame.after_change), announce=True)
        else:
            await self.send(events.pong())

    async def drain(self) -> None:
        """A graceful restart (ops.drain): answer every post received so far (acks in order,
        each before the live copy of its message), then close with 1012. Frames read after
        the last answer are not answered: the client re-sends unacknowledged posts."""
        await self._posts_answered()
        self.restarting = True  # no await since the last answer: no post slips in between
        await super().drain()

    async def _refuse(self, code: str, detail: str, **extra: object) -> None:
        self.errors_in_a_row += 1
        await self.send(events.error(code, detail, **extra))
        if self.errors_in_a_row >= settings.PARLEY["FLOOD_CLOSE_AFTER_ERRORS"]:
            await self.close(code=protocol.CLOSE_FLOOD, reason="too many rejected frames")

    def _query_seq(self, name: str) -> int | None:
        value = query_value(self.scope, name)
        return None if value is None else protocol.parse_seq(value)
