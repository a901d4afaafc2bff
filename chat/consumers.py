"""The room WebSocket: thin glue between frames, actions and the room's event group.

Delivery guarantee per socket: ``message.new`` frames go out in seq order with no gap and no
duplicate, and every later edit or delete follows. Each message change of a room (create, edit,
delete) has a change number, 1, 2, 3...; the socket keeps ``last_change``, the newest change it
has accounted for. A live event at or below it is dropped; one beyond ``last_change + 1`` (the
live layer lost something) makes the socket catch up from the database, the source of truth.

Live events do not pass through a channel of the socket's own: the socket *listens* on its
room's group (chat.layers), and the layer's receiving task calls ``_on_room_event`` for each
local socket with the event decoded once per process; the frame is already serialized, so a
socket's share is a few comparisons and one send. Two things run beside that task and must not
interleave with it: a replay from the database (connect, ``sync``, a gap) and the socket's own
post (its ack goes out before the live copy of its message). While either runs, live events
are set aside: a replay only notes the newest change it missed and looks again when done; a
post holds them and releases them, in order, after its ack.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from accounts.authentication import SUBPROTOCOL
from accounts.credentials import credential_valid
from chat import access, actions, batching, events, limits, online, presence, protocol, selectors
from chat.selectors import RoomAccessError
from config.db import db
from config.sending import ClientGoneSafeSend
from config.sockets import connection, text_frame

log = logging.getLogger("parley.ws")

MAX_INFLIGHT = 64  # a socket's posts awaiting their ack before the server stops reading it


class ListeningConsumer(limits.FrameRate, ClientGoneSafeSend, AsyncWebsocketConsumer):
    """A socket with no channel of its own (no per-socket Redis subscription): it listens on
    groups (chat.layers) and sends live frames with the server's own ``send``. Subclasses
    stop listening in ``_stop_listening``, which also runs when the consumer ends on an error.

    ``__call__`` replaces ``AsyncConsumer.__call__``, which for a consumer without a channel
    runs channels' ``await_many_dispatch([receive])``: a task per ``receive()`` plus an
    ``asyncio.wait`` (its set, future and callbacks) held for the whole life of the socket,
    about 3 KiB per idle socket. With a single source of messages, awaiting ``receive()``
    directly and dispatching each message in turn is the same loop."""

    channel_layer_alias = None
    channel_layer = None  # what AsyncConsumer sets for channel_layer_alias None
    slow_close_code = protocol.CLOSE_TOO_SLOW
    room_id: int | None = None
    user_id: int | None = None  # set once registered with the access gate (chat.access)
    access_dirty = False  # an access change may concern this socket: re-check before delivering
    revoked = False  # access was lost: nothing more is delivered, the close is on its way
    access_lock: asyncio.Lock | None = None
    closer: asyncio.Task | None = None
    expiry: asyncio.TimerHandle | None = None  # closes the socket when its token expires
    restarting = False  # drained for a graceful restart: the 1012 close is on its way

    @property
    def credential(self):
        return self.scope.get("credential")

    async def __call__(self, scope, receive, send) -> None:
        self.scope = scope
        self.base_send = send
        self.layer = get_channel_layer()
        # The server's own send and receive (config/application.py passes them on).
        self.connection = conn = connection(send, receive)
        try:
            while True:
                if conn is not None:
                    conn.receiving()
                message = await receive()
                if conn is not None:
                    conn.received()  # daphne: stops reading a client far ahead of us
                await self.dispatch(message)
        except StopConsumer:
            pass  # the socket closed: exit cleanly, as AsyncConsumer does
        finally:  # never leave a callback behind, nor a place in the user's socket cap
            self.forget_connection()
            await self._stop_listening()
            await limits.release_socket(self)

    async def admitted(self) -> bool:
        """Whether the user is under their socket cap (chat.limits); else close the socket."""
        if await limits.admit_socket(self):
            return True
        await self.close(code=limits.CLOSE_TOO_MANY_SOCKETS, reason="too many sockets")
        return False

    async def _stop_listening(self) -> None:
        raise NotImplementedError

    async def _enter_gate(self) -> None:
        """Register for access changes: before access is checked, so none is missed. A token
        that expires closes the socket when it does."""
        self.user_id = self.scope["user"].pk
        await access.gate().enter(self)
        expires = self.scope.get("credential_expires")
        if expires is not None:
            delay = max(0.0, (expires - timezone.now()).total_seconds())
            loop = asyncio.get_running_loop()
            self.expiry = loop.call_later(delay, self._lose, access.CLOSE_CREDENTIALS)

    def _leave_gate(self) -> None:
        if self.user_id is not None:
            access.gate().leave(self)
        if self.expiry is not None:
            self.expiry.cancel()

    def _lose(self, code: int) -> None:
        """Access is gone (called without blocking): deliver nothing more, then close."""
        if not self.revoked:
            self.revoked = True
            self.access_dirty = True  # live events are only noted from now on
            self.closer = asyncio.create_task(self._close_for_access(code))

    async def _close_for_access(self, code: int) -> None:
        self.revoked = True
        log.info("access lost (%s): closing the socket of user %s", code, self.user_id)
        await self._stop_delivering()
        reason = "credentials no longer valid" if code == 4401 else "room no longer readable"
        await self.close(code=code, reason=reason)

    async def _stop_delivering(self) -> None:
        raise NotImplementedError

    async def dispatch(self, message: dict) -> None:
        """channels' dispatch without its hop to the sync thread before every handler (its
        ``aclose_old_connections``: a thread round trip per frame received, each post's
        included). These consumers reach the database only through ``config.db``, whose calls
        close old connections on the threads that hold them."""
        if (self.client_gone or self.restarting) and message["type"] == "websocket.receive":
            # closed as too slow (or gone), or closing for a restart: what it sent meanwhile
            # is not answered (a client re-sends its unacknowledged posts on reconnecting)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    def push(self, message: dict):
        """Send a group message's pre-serialized frame (``message["frame"]``): written straight
        to the connection when the server allows (config.sockets.connection, the frame made
        once for every socket), else through the server's send (an awaitable to await). Never
        waits for a client that does not read (config.sending.ClientGoneSafeSend)."""
        if self.connection is not None:
            wire = message.get("_wire")
            if wire is None:
                wire = message["_wire"] = text_frame(message["frame"])
            if self.write_direct(wire, message["frame"]):
                return None
        return self.send_prepared(_ws_text(message))


class RoomConsumer(ListeningConsumer):
    room_id: int | None = None
    group: str | None = None
    session: str | None = None
    last_seq = 0  # the newest message this socket was sent
    last_change: int | None = 0  # the newest change accounted for (None: edits not replayed)
    errors_in_a_row = 0
    signals: str | None = None  # the room's presence/typing group, if the socket opted in
    online = False  # the process' presence refresher keeps this socket's entry alive
    last_typing = 0.0
    replaying = False  # a replay from the database is running or waiting to run
    missed_change = 0  # the newest change a replay was told of while it ran
    held: list[dict] | None = None  # live events set aside while the socket's posts are in flight
    acked_change = 0  # the newest change number of a message this socket was acked
    acker: asyncio.Task | None = None
    catch_up_task: asyncio.Task | None = None
    # The posts awaiting their ack, oldest first: a deque while posts are in flight, else the
    # shared empty tuple (an empty deque costs 760 bytes, and most sockets are idle).
    inflight: collections.deque[tuple[protocol.SendMessage, asyncio.Future]] | tuple = ()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.replay_lock = asyncio.Lock()

    async def connect(self) -> None:
        # Accept before refusing: a close code sent during the handshake never reaches the
        # client (the server answers HTTP 403 instead), and clients need the code to decide.
        await self.accept(subprotocol=_chosen_subprotocol(self.scope))
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
        self.replaying = True
        self.group = events.room_group(room.pk)
        await self.layer.listen(self.group, self, self._on_room_event)
        self.session = uuid.uuid4().hex
        await self._record_presence(events.USER_CONNECTED)
        await self._replay(lambda: self._resume(after_seq, after_change), announce=True)
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
        for _, future in self.inflight:  # the batch writer skips them; nobody awaits them now
            future.cancel()

    async def _record_presence(self, type: str) -> None:
        # Coalesced per user and room, and rated (chat.presence): churn writes bounded rows.
        record = presence.socket_opened if type == events.USER_CONNECTED else presence.socket_closed
        await record(user=self.scope["user"], room=self.room, session=self.session)

    # --- access changes (chat.access), called by the gate (must not block) -----------------------
    def access_changed(self, message: dict, *, definitive: bool) -> None:
        """Deliver nothing until access is re-checked (``_recheck``, run by a replay: live
        events meanwhile are only noted, and caught up on if access still holds)."""
        if definitive:
            self._lose(access.CLOSE_CREDENTIALS)
            return
        self.access_dirty = True
        if not self.replaying:
            self.replaying = True
            self.catch_up_task = asyncio.create_task(self._replay(None))

    async def _recheck(self) -> bool:
        """Re-check access against the database if something asked for it; close when it is
        gone. True while the socket may go on."""
        if not self.access_dirty and (self.access_lock is None or not self.access_lock.locked()):
            return not self.revoked  # nothing asked for a check, and none is running
        if self.access_lock is None:
            self.access_lock = asyncio.Lock()
        async with self.access_lock:
            while self.access_dirty and not self.revoked:
                self.access_dirty = False
                code = await db(access.socket_access)(
                    user_id=self.user_id, credential=self.credential, room_id=self.room_id
                )
                if code is not None:
                    self._lose(code)
        return not self.revoked

    # --- live events, called by the layer's receiving task (must not block) --------------------
    def _on_room_event(self, event: dict, held: bool = True):
        if event["type"] == "layer.reconnected":
            # Redis came back: anything published while it was away is in the database, and
            # an access change may have been missed.
            self.access_dirty = True
            self._note_missed((self.last_change or 0) + 1)
            return None
        if held and self.held is not None:
            self.held.append(event)
            return None
        change = event["change"]
        if self.replaying or self.access_dirty or change > (self.last_change or 0) + 1:
            self._note_missed(change)
            return None
        if change <= self.last_change:
            return None
        self.last_change = change
        if event["event"] == events.MESSAGE_CREATED:
            if event["seq"] <= self.last_seq:
                return None  # already sent, in its latest state, by a catch-up
            self.last_seq = event["seq"]
        # The hottest line of the fan-out: one write per socket per event.
        return self.push(event)

    def _note_missed(self, change: int) -> None:
        """Change ``change`` (at least) was not sent: have a replay bring the socket up to it."""
        self.missed_change = max(self.missed_change, change)
        if not self.replaying:
            self.replaying = True
            self.catch_up_task = asyncio.create_task(self._replay(None))

    async def _replay(self, step, *, announce: bool = False) -> None:
        """Run ``step`` (a replay; None: none), then catch up for as long as live events came
        in beyond where the replay got to; live delivery resumes when nothing is missing.
        Then ``sync.done`` says where the socket stands: always when ``announce``, else when
        the replay moved the position (its frames carry no change number: the client learns
        the position it may resume from here)."""
        self.replaying = True
        async with self.replay_lock:
            self.replaying = True
            try:
                if not await self._recheck():
                    return
                before = (self.last_seq, self.last_change)
                if step is not None:
                    await step()
                while self.missed_change > (self.last_change or 0) and not self.revoked:
                    await self._catch_up()
                moved = (self.last_seq, self.last_change) != before
                if (announce or moved) and not self.revoked:
                    await self.send(events.sync_done(self.last_seq, self.last_change))
            finally:
                self.replaying = self.revoked  # once revoked, live events stay set aside
                self.missed_change = 0

    # --- presence and typing (ephemeral) -------------------------------------------------------
    async def _go_online(self) -> None:
        if _query(self.scope, "presence") in ("1", "true"):
            self.signals = online.signals_group(self.room_id)
            await self.layer.listen(self.signals, self, self._on_signal)
        username = self.scope["user"].get_username()
        users = await online.enter(
            self.room_id, username, self.session, listening=self.signals is not None
        )
        await self._signal_presence(users)
        online.refresher().track(self.room_id, online.member(username, self.session))
        self.online = True

    async def _go_offline(self) -> None:
        username = self.scope["user"].get_username()
        if self.online:
            online.refresher().untrack(self.room_id, online.member(username, self.session))
        await self._signal_presence(await online.leave(self.room_id, username, self.session))

    async def _signal_presence(self, users: list[str] | None) -> None:
        if users is not None:
            message = events.signal_message(events.presence_frame(users))
            await self.layer.group_send(online.signals_group(self.room_id), message)

    async def _typing(self) -> None:
        now = time.monotonic()
        if now - self.last_typing < online.TYPING_EVERY_SECONDS:
            return  # throttled, silently: typing is a hint
        self.last_typing = now
        frame = events.typing_frame(self.scope["user"].get_username())
        await self.layer.group_send(
            online.signals_group(self.room_id), events.signal_message(frame, session=self.session)
        )

    def _on_signal(self, message: dict):
        if message.get("type") != events.SIGNAL or message.get("session") == self.session:
            return None  # nobody is told of their own typing
        if self.access_dirty or self.revoked:
            return None  # ephemeral: nothing to catch up on
        return self.push(message)

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
        elif isinstance(frame, protocol.Sync):
            self.errors_in_a_row = 0
            await self._posts_answered()
            self.access_dirty = True  # a replay re-checks access first
            await self._replay(
                lambda: self._resume(frame.after_seq, frame.after_change), announce=True
            )
        elif isinstance(frame, protocol.Typing):
            self.errors_in_a_row = 0
            await self._typing()
        else:
            self.errors_in_a_row = 0
            await self._posts_answered()
            await self.send(events.pong())

    async def _post(self, frame: protocol.SendMessage) -> None:
        """Hand the post to this process' batch writer and go on reading: a client may send
        many posts without waiting. Acks go out in the order the posts came, from ``_ack``."""
        if len(self.inflight) >= MAX_INFLIGHT:  # back-pressure: stop reading this client
            await asyncio.wait({self.inflight[0][1]})
        if self.access_dirty and not await self._recheck():
            return  # access was lost meanwhile: the close is on its way
        request = actions.PostRequest(
            author=self.scope["user"], room=self.room, body=frame.body, client_id=frame.client_id
        )
        if not self.inflight:
            self.inflight = collections.deque()
        self.inflight.append((frame, batching.batcher().submit(request)))
        if self.held is None:
            self.held = []  # the ack of a post goes out before the live copy of its message
        if self.acker is None:
            self.acker = asyncio.create_task(self._ack())

    async def _ack(self) -> None:
        """Answer the posts in flight in order; after each answer, release the live events
        held back that it covers (all of them once nothing is in flight)."""
        try:
            while self.inflight:
                frame, future = self.inflight[0]
                try:
                    message, created, change = await future
                except asyncio.CancelledError:
                    raise
                except actions.ActionError as exc:
                    self.inflight.popleft()
                    client_id = str(frame.client_id) if frame.client_id else None
                    await self._refuse(exc.code, exc.detail, client_id=client_id, **exc.extra)
                else:
                    self.inflight.popleft()
                    self.errors_in_a_row = 0
                    self.acked_change = max(self.acked_change, change)
                    await self.send(events.ack(frame.client_id, message, created=created))
                await self._release_held()
        except Exception:
            # The database failed under the batch: close, so the client reconnects and sends
            # its unacknowledged posts again (their client_ids make that safe).
            log.exception("posting failed; closing the socket")
            await self.close(code=1011)
        finally:
            self.acker = None
            if not self.inflight:
                self.inflight = ()

    async def _release_held(self) -> None:
        while self.held:
            if self.inflight and self.held[0]["change"] > self.acked_change:
                return  # maybe the live copy of a post still in flight: wait for its ack
            event = self.held.pop(0)
            pending = self._on_room_event(event, held=False)
            if pending is not None:
                await pending
        if not self.inflight:
            self.held = None

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

    # --- replays from the database ---------------------------------------------------------
    async def _resume(self, after_seq: int | None, after_change: int | None) -> None:
        """Resume from ``after_seq`` (None: from now) and, when given, replay the edits and
        deletes after ``after_change`` (``_replay`` then says where the socket stands)."""
        newest = await self._position()
        newest_seq, newest_change = newest
        # A position beyond the newest would hide what comes in between.
        if after_seq is None:
            self.last_seq, self.last_change = newest_seq, newest_change
        else:
            self.last_seq = min(after_seq, newest_seq)
            self.last_change = None if after_change is None else min(after_change, newest_change)
        await self._catch_up(newest)

    async def _catch_up(self, newest: tuple[int, int] | None = None) -> None:
        """Bring the socket up to the room's position ``newest`` (seq, change), read before
        any replay query (here, first, when not given), one bounded page at a time: first the
        messages after ``last_seq`` up to that seq as they now are, in seq order; then the
        edits and deletes of older messages after ``last_change``, in change order.

        Stopping at the position's seq keeps ``last_seq`` and ``last_change`` in step: every
        message up to ``last_seq`` was created by change ``last_change`` at the latest, so the
        next pass's edit replay never mistakes a message already sent for an edit. What was
        committed meanwhile arrives live, or in the next pass (``_replay``)."""
        page_size = settings.PARLEY["REPLAY_PAGE_SIZE"]
        # Read first: every change up to here is committed, so the queries below reflect it.
        newest_seq, newest_change = newest or await self._position()
        older_than = self.last_seq
        while self.last_seq < newest_seq and not self.client_gone:  # gone: closed as too slow
            if not await self._may_send():
                return
            page = await db(selectors.messages_after)(
                room_id=self.room_id, after_seq=self.last_seq, up_to_seq=newest_seq, limit=page_size
            )
            for message in page:
                if not await self._may_send():
                    return
                await self.send(events.replay_frame("message.new", message[0]))
                self.last_seq = message[0]["seq"]
            if len(page) < page_size:
                break
        cursor = self.last_change
        while cursor is not None and not self.client_gone:
            if not await self._may_send():
                return
            page = await db(selectors.changes_after)(
                room_id=self.room_id, up_to_seq=older_than, after_change=cursor, limit=page_size
            )
            for message, change in page:
                if not await self._may_send():
                    return
                frame = "message.deleted" if message["deleted_at"] else "message.edited"
                await self.send(events.replay_frame(frame, message, change))
            if len(page) < page_size:
                break
            cursor = page[-1][1]
        self.last_change = newest_change

    async def _may_send(self) -> bool:
        """A replay's check before each page and frame: nothing of the room is sent once
        access is lost, nor while an access change is being checked."""
        if self.access_dirty:
            return await self._recheck()
        return not self.revoked

    async def _position(self) -> tuple[int, int]:
        return await db(selectors.room_position)(room_id=self.room_id)

    def _query_seq(self, name: str) -> int | None:
        value = _query(self.scope, name)
        return None if value is None else protocol.parse_seq(value)


def _ws_text(message: dict) -> dict:
    """The ASGI send of a group message's pre-serialized frame, made once for all sockets."""
    prepared = message.get("_ws")
    if prepared is None:
        prepared = message["_ws"] = {"type": "websocket.send", "text": message["frame"]}
    return prepared


def _query(scope, name: str) -> str | None:
    """The last value of a query-string parameter, or None."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[-1] if values else None


class UserConsumer(ListeningConsumer):
    """``/ws/me/``: what a signed-in user's pages want beyond one room — activity in every room
    they belong to (for live unread counts) and their new mentions.

    It joins the room groups of the user's rooms, so a message crosses Redis no more often than
    for the room sockets; it forwards ``{"type": "room.activity", "room", "seq"}`` for each new
    message, and ``mention.new`` frames pushed to the user's own group.
    """

    groups_joined: list[str] = []
    checker: asyncio.Task | None = None
    held: list[dict] = []  # room activity that came in while access was re-checked (bounded)

    async def connect(self) -> None:
        await self.accept(subprotocol=_chosen_subprotocol(self.scope))
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=4401, reason="authentication required")
            return
        if not await self.admitted():
            return
        await self._enter_gate()
        room_ids = await db(selectors.member_room_ids)(user=user)
        self.groups_joined = [events.room_group(r) for r in room_ids] + [events.user_group(user.pk)]
        for group in self.groups_joined:
            await self.layer.listen(group, self, self._on_group_message)
        await self.send(events.ready(len(room_ids)))

    async def disconnect(self, code: int) -> None:
        await self._stop_listening()

    async def _stop_listening(self) -> None:
        self._leave_gate()
        await self._stop_delivering()
        if self.checker:
            self.checker.cancel()

    async def _stop_delivering(self) -> None:
        groups, self.groups_joined = self.groups_joined, []
        for group in groups:
            await self.layer.unlisten(group, self)

    def access_changed(self, message: dict, *, definitive: bool) -> None:
        """An access change of this user (chat.access): nothing is forwarded until the
        credential and the rooms are re-checked (``_recheck``)."""
        if definitive:
            self._lose(access.CLOSE_CREDENTIALS)
        else:
            self._start_recheck()

    def _start_recheck(self) -> None:
        self.access_dirty = True
        if self.checker is None:
            self.held = []
            self.checker = asyncio.create_task(self._recheck())

    async def _recheck(self) -> None:
        """Close with 4401 if the credential no longer holds; stop listening on the rooms the
        user no longer belongs to."""
        try:
            while not self.revoked and (self.access_dirty or self.held):
                if not self.access_dirty:
                    held, self.held = self.held, []
                    for message in held:  # those of the rooms still joined, in order
                        if events.room_group(message["room_id"]) in self.groups_joined:
                            pending = self._forward(message)
                            if pending is not None:
                                await pending
                    continue
                self.access_dirty = False
                user = self.scope["user"]
                if not await db(credential_valid)(user_id=user.pk, credential=self.credential):
                    self._lose(access.CLOSE_CREDENTIALS)
                    return
                room_ids = await db(selectors.member_room_ids)(user=user)
                rooms = {events.room_group(r) for r in room_ids}
                for group in [g for g in self.groups_joined if g.startswith("room.")]:
                    if group not in rooms:
                        self.groups_joined.remove(group)
                        await self.layer.unlisten(group, self)
        finally:
            self.checker = None

    def _on_group_message(self, message: dict):
        if self.access_dirty or self.checker is not None:  # being re-checked, or lost
            if message["type"] == "layer.reconnected":
                self._start_recheck()
            elif message["type"] == "chat.event" and not self.revoked and len(self.held) < 1000:
                self.held.append(message)  # forwarded after the check if the room still is ours
            return None
        if message["type"] == "layer.reconnected":
            self._start_recheck()  # an access change may have been missed
            return None
        return self._forward(message)

    def _forward(self, message: dict):
        if message["type"] == "chat.event":
            if message.get("event") == events.MESSAGE_CREATED:
                frame = events.room_activity(message["room"], message["seq"])
                return self.push({"frame": frame})  # send() could wait: not here
        elif message["type"] == events.SIGNAL:
            return self.push(message)
        return None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        retry_after = self.frame_retry_after()
        if retry_after is None:
            await self.send(events.error("unknown_type", "this socket only pushes"))
            return
        detail = limits.rate_limited_detail()
        await self.send(events.error("rate_limited", detail, retry_after=retry_after))
        if self.frame_flood():
            await self.close(code=protocol.CLOSE_FLOOD, reason="too many frames")


def _chosen_subprotocol(scope) -> str | None:
    return SUBPROTOCOL if SUBPROTOCOL in scope.get("subprotocols", []) else None
