"""A room socket's ephemeral signals: who is online and who is typing (chat.online).

Never persisted, never replayed: a socket that opted in (``?presence=1``) listens on the room's
signals group and forwards its frames while its access holds; a frame missed is not caught up.
"""

from __future__ import annotations

import time

from chat import online
from chat.arrival import Arrival, Departure
from chat.consumers.base import query_value
from contract import events


class RoomSignals:
    """Mixin of the room consumer (chat.consumers.room) and of a ``/ws/`` subscription that
    opted in (chat.consumers.mux): presence on connect and disconnect, typing signals
    (throttled), and the signals group for sockets that opted in."""

    signals: str | None = None  # the room's presence/typing group, if the socket opted in
    online = False  # the process' presence refresher keeps this socket's entry alive
    last_typing = 0.0
    arrival: Arrival | None = None  # a room socket's connect entered the online set already

    def wants_signals(self) -> bool:
        """Whether the socket opted in to presence and typing frames (``?presence=1``)."""
        return query_value(self.scope, "presence") in ("1", "true")

    async def _go_online(self) -> None:
        if self.wants_signals():
            self.signals = online.signals_group(self.room_id)
            await self.layer.listen(self.signals, self, self._on_signal)
        username = self.scope["user"].get_username()
        listening = self.signals is not None
        if self.arrival is not None:  # entered already (chat.arrival): who else listens?
            others = self.arrival.others
            users = await online.listed(self.room_id, others=others, listening=listening)
        else:
            users = await online.enter(self.room_id, username, self.session, listening=listening)
        await self._signal_presence(users)
        online.refresher().track(self.room_id, online.member(username, self.session))
        self.online = True

    async def _go_offline(self, departure: Departure | None = None) -> None:
        """Leave the online set (or see who listens, when ``departure`` left it already)."""
        username = self.scope["user"].get_username()
        if self.online:
            online.refresher().untrack(self.room_id, online.member(username, self.session))
        if departure is not None:
            users = await online.listed(self.room_id, others=departure.others, listening=False)
        else:
            users = await online.leave(self.room_id, username, self.session)
        await self._signal_presence(users)

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
        if self.delivery.may_send() is not True:
            return None  # access being re-checked or lost; ephemeral: nothing to catch up on
        return self.push(message)
