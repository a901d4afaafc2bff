"""One room's delivery on a socket: the I/O around a chat.delivery.RoomDelivery, shared by the
room socket (``/ws/rooms/<slug>/``, chat.consumers.room) and each subscription of the
multiplexed socket (``/ws/``, chat.consumers.mux).

``RoomStream`` is a mixin: live events from the room's group (``_on_room_event``), access
re-checks, replays from the database (one at a time, ``replay_lock``) and the room's posts,
answered in order by one task (``_ack``). Its host provides the delivery and the room
(``delivery``, ``room``, ``room_id``), who is asking (``scope``, ``user_id``,
``credential``) and the transport: ``send`` (a frame of this room), ``push`` (a live event's
pre-made frame), ``client_gone``, ``close``, ``_refuse`` (an error frame) and ``_lose`` (access
to the room, or the credential, is gone).
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from chat import access, actions, batching, connecting, protocol, selectors
from chat.delivery import CATCH_UP, SEND, RoomDelivery
from infra.db import db

log = logging.getLogger("parley.ws")


class RoomStream:
    """The per-room half of a socket (see the module docstring)."""

    delivery: RoomDelivery | None = None  # made at connect, before access is first checked
    errors_in_a_row = 0
    access_lock: asyncio.Lock | None = None  # made when access is first re-checked
    # Replays run one at a time: the lock exists while one runs or waits (``replays`` of them)
    replay_lock: asyncio.Lock | None = None
    replays = 0
    acker: asyncio.Task | None = None
    catch_up_task: asyncio.Task | None = None

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
        self,
        resume: tuple[int | None, int | None] | None,
        *,
        announce: bool = False,
        ahead: connecting.ReadAhead | None = None,
    ) -> None:
        """Re-check access if asked, resume from ``resume`` (after_seq, after_change) if given
        (after_seq None: from now; after_change None: no edits replayed; the position and first
        pages read in one hop, or given in ``ahead`` by a connect that read them with the room,
        after listening: chat.connecting), then catch up again
        only while the live events kept meanwhile do not follow where it got to; then
        ``sync.done`` when the delivery says so (always when ``announce``), then the kept
        events as live frames."""
        d = self.delivery
        d.begin_replay()
        if self.replay_lock is None:
            self.replay_lock = asyncio.Lock()
        lock = self.replay_lock
        self.replays += 1
        try:
            async with lock:
                d.begin_replay()
                completed = False
                try:
                    if not await self._recheck():
                        return
                    d.start_replay()
                    if resume is not None:
                        if ahead is None:
                            ahead = await db(connecting.read_ahead)(
                                room_id=self.room_id,
                                after_seq=resume[0],
                                after_change=resume[1],
                                page_size=settings.PARLEY["REPLAY_PAGE_SIZE"],
                            )
                        d.resume(*resume, ahead.newest)
                        await self._catch_up(ahead.newest, ahead)
                    while d.catch_up_owed():
                        await self._catch_up()
                    done = d.replay_done(announce=announce)
                    if done is not None:
                        await self.send(done)
                    await self._send_kept()
                    completed = True
                finally:
                    again = d.end_replay(completed=completed)
        finally:
            self.replays -= 1
            if not self.replays:  # none runs or waits: an idle socket keeps no lock
                self.replay_lock = None
        if again is CATCH_UP:
            self._start_catch_up()

    async def _send_kept(self) -> None:
        """The live events kept during the replay, in order, while access holds (those kept
        while they go follow): under steady traffic the replay ends here, not when it stops."""
        d = self.delivery
        while await self._may_send() and (event := d.release_kept()) is not None:
            pending = self.push(event)
            if pending is not None:
                await pending

    async def _catch_up(
        self, newest: tuple[int, int] | None = None, ahead: connecting.ReadAhead | None = None
    ) -> None:
        """One pass up to the room's position ``newest`` (read first when not given: every
        change up to it is committed, so the pages below reflect it), page by page (those
        read ahead with the position taken from ``ahead``)."""
        plan = self.delivery.catch_up(
            newest or await self._position(), settings.PARLEY["REPLAY_PAGE_SIZE"]
        )
        query = plan.next_query()
        while query is not None and not self.client_gone:  # gone: closed as too slow
            if not await self._may_send():
                return
            page = None if ahead is None else ahead.page(query)
            if page is None:
                page = (
                    []
                    if plan.needless(query)
                    else await db(connecting.read_page)(self.room_id, query, plan.newest_change)
                )
            for frame in plan.frames(page):
                if not await self._may_send():
                    return
                await self.send(frame)
            query = plan.next_query(page)
        plan.finish()

    async def _position(self) -> tuple[int, int]:
        return await db(selectors.room_position)(room_id=self.room_id)

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
