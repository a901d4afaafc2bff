"""``/ws/rooms/<slug>/``: the room socket, the transport around a chat.delivery.RoomDelivery.

The delivery decides (no I/O): which live event to send, drop or hold, when to catch up from
the database, what a replay sends and in which pages, when a post's ack goes out and what it
releases. This consumer does what it says: it reads frames and calls actions, runs replays
and acks as tasks, queries the database (``infra.db``) and sends.

Live events do not pass through a channel of the socket's own: the socket *listens* on its
room's group (chat.layers), and the layer's receiving task calls ``_on_room_event`` for each
local socket with the event decoded once per process; the frame is already serialized, so a
socket's share is a few comparisons and one send. Replays (connect, ``sync``, a gap, a Redis
reconnect, an access re-check) run one at a time (``replay_lock``); posts are answered in
order by one task (``_ack``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from django.conf import settings

from chat import access, actions, batching, limits, presence, protocol, selectors
from chat.consumers.base import ListeningConsumer, chosen_subprotocol, query_value
from chat.consumers.signals import RoomSignals
from chat.delivery import CATCH_UP, SEND, MessagesAfter, RoomDelivery
from chat.selectors import RoomAccessError
from contract import events
from infra.db import db

log = logging.getLogger("parley.ws")


class RoomConsumer(RoomSignals, ListeningConsumer):
    delivery: RoomDelivery | None = None  # made at connect, before access is first checked
    group: str | None = None
    session: str | None = None
    errors_in_a_row = 0
    access_lock: asyncio.Lock | None = None  # made when access is first re-checked
    acker: asyncio.Task | None = None
    catch_up_task: asyncio.Task | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.replay_lock = asyncio.Lock()

    async def connect(self) -> None:
        # Accept before refusing: a close code sent during the handshake never reaches the
        # client (the server answers HTTP 403 instead), and clients need the code to decide.
        await self.accept(subprotocol=chosen_subprotocol(self.scope))
        # A new delivery replays first (below): an access change from the gate meanwhile is
        # only noted, and the replay re-checks access before sending anything.
        self.delivery = RoomDelivery()
        if self.scope["user"].is_authenticated:
            await self._enter_gate()
        try:
            after_seq = self._query_seq("after_seq")
            after_change = self._query_seq("after_change")
            room = await db(selectors.room_for_user)(
                user=self.scope["user"], slug=self.scope["url_route"]["kwargs"]["slug"]
            )
        except RoomAccessError as exc:
            await self.close(code=exc.code, reason=exc.detail)
            return
        except protocol.ProtocolError as exc:
            await self.close(code=protocol.CLOSE_BAD_REQUEST, reason=exc.detail)
            return
        if not await self.admitted():
            return
        self.room = room
        self.room_id = room.pk
        # Listen before reading the database: an event committed from here on arrives live,
        # or is in the replay below, or both (deduplicated). Until the replay is done, live
        # events are only noted.
        self.group = events.room_group(room.pk)
        await self.layer.listen(self.group, self, self._on_room_event)
        self.session = uuid.uuid4().hex
        await self._record_presence(events.USER_CONNECTED)
        await self._replay((after_seq, after_change), announce=True)
        await self._go_online()

    async def disconnect(self, code: int) -> None:
        await self._stop_listening()
        if self.session:
            await self._record_presence(events.USER_DISCONNECTED)
            await self._go_offline()

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

    async def _record_presence(self, type: str) -> None:
        # Coalesced per user and room, and rated (chat.presence): churn writes bounded rows.
        record = presence.socket_opened if type == events.USER_CONNECTED else presence.socket_closed
        await record(user=self.scope["user"], room=self.room, session=self.session)

    # --- live events, called by the layer's receiving task (must not block) --------------------
    def _on_room_event(self, event: dict):
        verdict = self.delivery.live(event)
        if verdict is SEND:
            # The hottest line of the fan-out: one write per socket per event.
            return self.push(event)
        if verdict is CATCH_UP:
            self._start_catch_up()
        return None

    def _start_catch_up(self) -> None:
        self.catch_up_task = asyncio.create_task(self._replay(None))

    # --- access changes (chat.access), called by the gate (must not block) -----------------------
    def access_changed(self, message: dict, *, definitive: bool) -> None:
        """Deliver nothing until access is re-checked (by a replay: live events meanwhile are
        only noted, and caught up on if access still holds)."""
        if definitive:
            self._lose(access.CLOSE_CREDENTIALS)
        elif self.delivery.access_changed() is CATCH_UP:
            self._start_catch_up()

    def _access_lost(self) -> None:
        self.delivery.stop()

    async def _recheck(self) -> bool:
        """Re-check access against the database if something asked for it; close when it is
        gone. True while the socket may go on."""
        d = self.delivery
        if not d.access_dirty and (self.access_lock is None or not self.access_lock.locked()):
            return not d.stopped  # nothing asked for a check, and none is running
        if self.access_lock is None:
            self.access_lock = asyncio.Lock()
        async with self.access_lock:
            while d.check_access():
                code = await db(access.socket_access)(
                    user_id=self.user_id, credential=self.credential, room_id=self.room_id
                )
                if code is not None:
                    self._lose(code)
        return not d.stopped

    async def _may_send(self) -> bool:
        """A replay's check before each page and frame: nothing of the room is sent once
        access is lost, nor while an access change is being checked."""
        allowed = self.delivery.may_send()
        return await self._recheck() if allowed is None else allowed

    # --- replays from the database ---------------------------------------------------------
    async def _replay(
        self, resume: tuple[int | None, int | None] | None, *, announce: bool = False
    ) -> None:
        """Re-check access if asked, resume from ``resume`` (after_seq, after_change) if given
        (after_seq None: from now; after_change None: no edits replayed), then catch up for
        as long as live events came in beyond where the replay got to; then ``sync.done``
        when the delivery says so (always when ``announce``)."""
        d = self.delivery
        d.begin_replay()
        async with self.replay_lock:
            d.begin_replay()
            completed = False
            try:
                if not await self._recheck():
                    return
                d.start_replay()
                if resume is not None:
                    newest = await self._position()
                    d.resume(*resume, newest)
                    await self._catch_up(newest)
                while d.catch_up_owed():
                    await self._catch_up()
                done = d.replay_done(announce=announce)
                if done is not None:
                    await self.send(done)
                completed = True
            finally:
                again = d.end_replay(completed=completed)
        if again is CATCH_UP:
            self._start_catch_up()

    async def _catch_up(self, newest: tuple[int, int] | None = None) -> None:
        """One pass up to the room's position ``newest`` (read first when not given: every
        change up to it is committed, so the pages below reflect it), page by page."""
        plan = self.delivery.catch_up(
            newest or await self._position(), settings.PARLEY["REPLAY_PAGE_SIZE"]
        )
        query = plan.next_query()
        while query is not None and not self.client_gone:  # gone: closed as too slow
            if not await self._may_send():
                return
            if isinstance(query, MessagesAfter):
                page = await db(selectors.messages_after)(
                    room_id=self.room_id,
                    after_seq=query.after_seq,
                    up_to_seq=query.up_to_seq,
                    limit=query.limit,
                )
            else:
                page = await db(selectors.changes_after)(
                    room_id=self.room_id,
                    up_to_seq=query.up_to_seq,
                    after_change=query.after_change,
                    limit=query.limit,
                )
            for frame in plan.frames(page):
                if not await self._may_send():
                    return
                await self.send(frame)
            query = plan.next_query(page)
        plan.finish()

    async def _position(self) -> tuple[int, int]:
        return await db(selectors.room_position)(room_id=self.room_id)

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

    async def _post(self, frame: protocol.SendMessage) -> None:
        """Hand the post to this process' batch writer and go on reading: a client may send
        many posts without waiting. Acks go out in the order the posts came, from ``_ack``."""
        backlog = self.delivery.backlog()
        if backlog is not None:  # back-pressure: stop reading this client
            await asyncio.wait({backlog})
        if self.delivery.access_dirty and not await self._recheck():
            return  # access was lost meanwhile: the close is on its way
        request = actions.PostRequest(
            author=self.scope["user"], room=self.room, body=frame.body, client_id=frame.client_id
        )
        self.delivery.post_submitted(frame, batching.batcher().submit(request))
        if self.acker is None:
            self.acker = asyncio.create_task(self._ack())

    async def _ack(self) -> None:
        """Answer the posts in flight in order; after each answer, release the live events
        held back that it covers (all of them once nothing is in flight)."""
        d = self.delivery
        try:
            while (post := d.oldest_post()) is not None:
                try:
                    message, created, change = await post[1]
                except asyncio.CancelledError:
                    raise
                except actions.ActionError as exc:
                    client_id = d.post_refused().client_id
                    client_id = str(client_id) if client_id else None
                    await self._refuse(exc.code, exc.detail, client_id=client_id, **exc.extra)
                else:
                    self.errors_in_a_row = 0
                    await self.send(d.post_acked(message, created=created, change=change))
                await self._release_held()
        except Exception:
            # The database failed under the batch: close, so the client reconnects and sends
            # its unacknowledged posts again (their client_ids make that safe).
            log.exception("posting failed; closing the socket")
            await self.close(code=1011)
        finally:
            self.acker = None

    async def _release_held(self) -> None:
        d = self.delivery
        while (event := d.release_next()) is not None:
            verdict = d.deliver(event)
            if verdict is SEND:
                pending = self.push(event)
                if pending is not None:
                    await pending
            elif verdict is CATCH_UP:
                self._start_catch_up()

    async def _posts_answered(self) -> None:
        """Wait until every post in flight is answered: frames after posts are answered after
        them (a ping's pong follows the acks of the posts sent before it)."""
        while self.acker is not None:
            await asyncio.wait({self.acker})

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
