"""What the room and ``/ws/me/`` sockets share: transport glue and the access gate.

A ``ListeningConsumer`` has no channel of its own (no per-socket Redis subscription): it listens
on groups (chat.layers ``listen``) with a callback, which the layer's receiving task calls with
each event decoded once per process, and sends live frames with the server's own ``send`` or
straight to its connection (realtime.sockets). It registers with the process' access gate
(chat.access), closes when its access is lost or its token expires, and holds a place in its
user's socket cap (chat.limits) until it ends.

Connect work takes turns: at most ``PARLEY["CONNECT_CONCURRENCY"]`` sockets of a process do
theirs at once (``take_turn``), so that a wave of connects does not queue the database threads
and the event loop ahead of the live traffic of sockets already connected. A socket waits for
its turn after the handshake; one whose client leaves meanwhile gives its place up unused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from urllib.parse import parse_qs

from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from accounts.authentication import SUBPROTOCOL
from chat import access, limits, protocol
from chat.consumers.direct import DirectConsumer
from infra.loops import per_loop
from realtime.sending import ClientGoneSafeSend
from realtime.sockets import connection, text_frame

log = logging.getLogger("parley.ws")

connect_turns = per_loop(lambda: asyncio.Semaphore(settings.PARLEY["CONNECT_CONCURRENCY"]))


class ListeningConsumer(limits.FrameRate, ClientGoneSafeSend, DirectConsumer):
    """A socket that listens on groups. Subclasses stop listening in ``_stop_listening``,
    which also runs when the consumer ends on an error, and stop delivering at once in
    ``_access_lost`` (called without blocking)."""

    slow_close_code = protocol.CLOSE_TOO_SLOW
    room_id: int | None = None  # the gate's question: which room (None: no single room)
    room_ids: frozenset[int] | set[int] = frozenset()  # or which rooms (/ws/: those followed)
    user_id: int | None = None  # set once registered with the access gate (chat.access)
    revoked = False  # access was lost: nothing more is delivered, the close is on its way
    closer: asyncio.Task | None = None
    expiry: asyncio.TimerHandle | None = None  # closes the socket when its token expires
    restarting = False  # drained for a graceful restart: the 1012 close is on its way
    turn: asyncio.Semaphore | None = None  # held while the socket does its connect work

    @property
    def credential(self):
        return self.scope.get("credential")

    # --- the transport ----------------------------------------------------------------------
    def opened(self, receive, send) -> None:
        self.layer = get_channel_layer()
        # The server's own send and receive (realtime/application.py passes them on).
        self.connection = connection(send, receive)

    def receiving(self) -> None:
        if self.connection is not None:
            self.connection.receiving()

    def received(self) -> None:
        if self.connection is not None:
            self.connection.received()  # daphne: stops reading a client far ahead of us

    async def closed(self) -> None:
        # Never leave a callback behind, nor a place in the user's socket cap, nor a turn.
        self.end_turn()
        self.forget_connection()
        await self._stop_listening()
        await limits.release_socket(self)

    async def dispatch(self, message: dict) -> None:
        if (self.client_gone or self.restarting) and message["type"] == "websocket.receive":
            # closed as too slow (or gone), or closing for a restart: what it sent meanwhile
            # is not answered (a client re-sends its unacknowledged posts on reconnecting)
            return
        await super().dispatch(message)

    def push(self, message: dict):
        """Send a group message's pre-serialized frame (``message["frame"]``): written straight
        to the connection when the server allows (realtime.sockets.connection, the frame made
        once for every socket), else through the server's send (an awaitable to await). Never
        waits for a client that does not read (realtime.sending.ClientGoneSafeSend)."""
        if self.connection is not None:
            wire = message.get("_wire")
            if wire is None:
                wire = message["_wire"] = text_frame(message["frame"])
            if self.write_direct(wire, message["frame"]):
                return None
        return self.send_prepared(_ws_text(message))

    async def take_turn(self) -> bool:
        """Wait for this socket's turn to do its connect work (``end_turn`` when done; the
        consumer's end gives it back too). False if the client left first: its disconnect is
        handled next, and the turn was never taken."""
        turns = connect_turns()
        if not turns.locked():
            await turns.acquire()  # a free place: taken without waiting
            self.turn = turns
            return True
        acquired = asyncio.ensure_future(turns.acquire())
        left = self.receive_ahead()
        try:
            await asyncio.wait({acquired, left}, return_when=asyncio.FIRST_COMPLETED)
            if not acquired.done() and not _leaving(left):
                await acquired  # a frame came early: it is handled after the connect
        except BaseException:
            if acquired.done() and not acquired.cancelled():
                turns.release()
            else:
                acquired.cancel()  # the semaphore hands a place given meanwhile on
            raise
        if not acquired.done():
            acquired.cancel()
            return False
        self.turn = turns
        if _leaving(left):
            self.end_turn()  # taken as the client left: unused
            return False
        self.stop_reading_ahead()  # nothing came meanwhile: no task kept waiting on receive()
        return True

    def end_turn(self) -> None:
        """The connect work is done (or ended): the next waiting socket may start its own."""
        turns, self.turn = self.turn, None
        if turns is not None:
            turns.release()

    async def admitted(self, admit: Awaitable[bool] | None = None) -> bool:
        """Whether the user is under their socket cap (chat.limits; or as ``admit`` answers,
        which takes the place in the cap with more); else close the socket."""
        if await (admit if admit is not None else limits.admit_socket(self)):
            return True
        await self.close(code=limits.CLOSE_TOO_MANY_SOCKETS, reason="too many sockets")
        return False

    async def _stop_listening(self) -> None:
        raise NotImplementedError

    async def _stop_delivering(self) -> None:
        raise NotImplementedError

    # --- access (chat.access) ---------------------------------------------------------------
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
            self._access_lost()
            self.closer = asyncio.create_task(self._close_for_access(code))

    def _access_lost(self) -> None:
        raise NotImplementedError

    async def _close_for_access(self, code: int) -> None:
        log.info("access lost (%s): closing the socket of user %s", code, self.user_id)
        await self._stop_delivering()
        reason = "credentials no longer valid" if code == 4401 else "room no longer readable"
        await self.close(code=code, reason=reason)


def _leaving(receiving: asyncio.Task) -> bool:
    """Whether a message read ahead says the client has gone (or reading it failed)."""
    if not receiving.done() or receiving.cancelled():
        return False
    return receiving.exception() is not None or receiving.result()["type"] == "websocket.disconnect"


def _ws_text(message: dict) -> dict:
    """The ASGI send of a group message's pre-serialized frame, made once for all sockets."""
    prepared = message.get("_ws")
    if prepared is None:
        prepared = message["_ws"] = {"type": "websocket.send", "text": message["frame"]}
    return prepared


def query_value(scope, name: str) -> str | None:
    """The last value of a query-string parameter, or None."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[-1] if values else None


def chosen_subprotocol(scope) -> str | None:
    """The subprotocol to accept: Parley's, when the client offered it."""
    return SUBPROTOCOL if SUBPROTOCOL in scope.get("subprotocols", []) else None
