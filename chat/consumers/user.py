"""``/ws/me/``: what a signed-in user's pages want beyond one room — activity in every room they
belong to (for live unread counts) and their new mentions.

It listens on the room groups of the user's rooms, so a message crosses Redis no more often than
for the room sockets; it forwards ``room.activity`` (room, seq) for each new message, and
``mention.new`` frames pushed to the user's own group. On an access change it forwards nothing
until the credential and the rooms are re-checked, holding what comes meanwhile (bounded).
"""

from __future__ import annotations

import asyncio

from accounts.credentials import credential_valid
from chat import access, limits, protocol, selectors
from chat.consumers.base import ListeningConsumer, chosen_subprotocol
from contract import events
from infra.db import db

MAX_HELD = 1000  # room activity held while access is re-checked; beyond, dropped (a hint)


class UserConsumer(ListeningConsumer):
    groups_joined: list[str] = []
    checker: asyncio.Task | None = None
    access_dirty = False  # an access change may concern this socket: re-check before forwarding
    held: list[dict] = []  # room activity that came in while access was re-checked (bounded)

    async def connect(self) -> None:
        await self.accept(subprotocol=chosen_subprotocol(self.scope))
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

    def _access_lost(self) -> None:
        self.access_dirty = True  # nothing is forwarded from now on

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
            elif message["type"] == "chat.event" and not self.revoked and len(self.held) < MAX_HELD:
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
