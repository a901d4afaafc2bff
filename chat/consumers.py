"""The room WebSocket: thin glue between frames, actions and the room's event group.

Delivery guarantee per socket: ``message.new`` frames go out in seq order with no gap and no
duplicate. ``last_seq`` is the highest seq this socket was sent; a live event at or below it is
dropped, one beyond ``last_seq + 1`` (the live layer lost something, or publishers raced) makes
the socket catch up from the database, the source of truth, before going on.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.authentication import SUBPROTOCOL
from chat import actions, events, presence, protocol, selectors
from chat.selectors import RoomAccessError

log = logging.getLogger("parley.ws")


class RoomConsumer(AsyncWebsocketConsumer):
    room_id: int | None = None
    group: str | None = None
    session: str | None = None
    last_seq = 0
    errors_in_a_row = 0

    async def connect(self) -> None:
        # Accept before refusing: a close code sent during the handshake never reaches the
        # client (the server answers HTTP 403 instead), and clients need the code to decide.
        offered = self.scope.get("subprotocols", [])
        await self.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        try:
            after_seq = self._query_after_seq()
            room = await database_sync_to_async(selectors.room_for_user)(
                user=self.scope["user"], slug=self.scope["url_route"]["kwargs"]["slug"]
            )
        except RoomAccessError as exc:
            await self.close(code=exc.code, reason=exc.detail)
            return
        except protocol.ProtocolError as exc:
            await self.close(code=protocol.CLOSE_BAD_REQUEST, reason=exc.detail)
            return
        self.room = room
        self.room_id = room.pk
        # Join the group before reading the database: an event committed from here on arrives
        # live, or is in the replay below, or both (deduplicated by seq).
        self.group = events.room_group(room.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.session = uuid.uuid4().hex
        await self._record_presence(events.USER_CONNECTED)
        await self._resume(after_seq)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.session:
            await self._record_presence(events.USER_DISCONNECTED)

    async def _record_presence(self, type: str) -> None:
        await database_sync_to_async(presence.record_connection)(
            type, user=self.scope["user"], room=self.room, session=self.session
        )

    async def dispatch(self, message: dict) -> None:
        # channels runs close_old_connections in a worker thread before *every* handler; live
        # events touch no database (a catch-up goes through database_sync_to_async, which
        # manages connections itself), so skip that hop on the hot path.
        if message["type"] == "chat.event":
            await self.chat_event(message)
        else:
            await super().dispatch(message)

    # --- client frames ---------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.room_id is None:
            return  # refused at connect; the close is on its way
        try:
            frame = protocol.parse_client_frame(text_data, bytes_data)
        except protocol.ProtocolError as exc:
            await self._refuse(exc.code, exc.detail)
            return
        if isinstance(frame, protocol.SendMessage):
            await self._post(frame)
        elif isinstance(frame, protocol.Sync):
            self.errors_in_a_row = 0
            await self._resume(frame.after_seq)
        else:
            self.errors_in_a_row = 0
            await self.send(events.dumps({"type": "pong"}))

    async def _post(self, frame: protocol.SendMessage) -> None:
        try:
            message, created = await database_sync_to_async(_post_and_describe)(
                author=self.scope["user"],
                room=self.room,
                body=frame.body,
                client_id=frame.client_id,
            )
        except actions.ActionError as exc:
            client_id = str(frame.client_id) if frame.client_id else None
            await self._refuse(exc.code, exc.detail, client_id=client_id)
            return
        self.errors_in_a_row = 0
        await self.send(protocol.ack(frame.client_id, message, created=created))

    async def _refuse(self, code: str, detail: str, **extra: object) -> None:
        self.errors_in_a_row += 1
        await self.send(protocol.error(code, detail, **extra))
        if self.errors_in_a_row >= settings.PARLEY["FLOOD_CLOSE_AFTER_ERRORS"]:
            await self.close(code=protocol.CLOSE_FLOOD, reason="too many rejected frames")

    # --- events from the room's group ----------------------------------------------------------
    async def chat_event(self, event: dict) -> None:
        if self.room_id is None:
            return
        seq = event["seq"]
        if seq <= self.last_seq:
            return
        if seq == self.last_seq + 1:
            self.last_seq = seq
            await self.send(event["frame"])
        else:
            await self._catch_up()

    async def layer_reconnected(self, event: dict) -> None:
        """Redis came back: anything published while it was away is in the database."""
        if self.room_id is not None:
            await self._catch_up()

    async def _resume(self, after_seq: int | None) -> None:
        """Resume from ``after_seq`` (None: from now), then say where the socket stands."""
        newest = await database_sync_to_async(selectors.room_seq)(room_id=self.room_id)
        # A position beyond the newest message would hide the messages in between.
        self.last_seq = newest if after_seq is None else min(after_seq, newest)
        await self._catch_up()
        await self.send(protocol.sync_done(self.last_seq))

    async def _catch_up(self) -> None:
        """Send every committed message after ``last_seq``, one bounded page at a time."""
        page_size = settings.PARLEY["REPLAY_PAGE_SIZE"]
        while True:
            page = await database_sync_to_async(selectors.messages_after)(
                room_id=self.room_id, after_seq=self.last_seq, limit=page_size
            )
            for message in page:
                await self.send(events.message_new_frame(message))
            if page:
                self.last_seq = page[-1]["seq"]
            if len(page) < page_size:
                return

    def _query_after_seq(self) -> int | None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        values = query.get("after_seq")
        return protocol.parse_seq(values[-1]) if values else None


def _post_and_describe(**kwargs) -> tuple[events.MessageData, bool]:
    result = actions.post_message(**kwargs)
    return events.message_data(result.message), result.created
