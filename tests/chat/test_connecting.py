"""A room socket's connect: one database hop for a room the process knows (chat.connecting), and
connect work taking turns (chat.consumers.base, ``PARLEY["CONNECT_CONCURRENCY"]``); through the
real router, layer, Redis and database."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from chat import actions, connecting, selectors
from chat.consumers import base
from chat.consumers.room import RoomConsumer
from chat.models import Message, Room
from config.asgi import application
from contract import events
from tests.chat.test_consumers import assert_next_is_sentinel, recv_until, save_message, seqs_of
from tests.support import ws
from tests.support.rooms import C
from tests.support.ws import ORIGIN, TIMEOUT, Socket, open_socket, session_cookie

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("disconnect_leftover_sockets"),
]


def _edit(room: Room, author, seq: int, body: str) -> Message:
    message = Message.objects.get(room=room, seq=seq)
    return actions.edit_message(user=author, message=message, body=body)


@pytest.fixture
def hops(monkeypatch):
    """The database hops that read a room, access, a position or replay pages, by the name of
    the outermost function of each (calls nested in one hop are not hops)."""
    monkeypatch.setattr(connecting, "_room_ids", {})  # nothing known from earlier tests
    seen: list[str] = []
    depth = threading.local()

    def spy(module, name):
        real = getattr(module, name)

        def counted(*args, **kwargs):
            level = getattr(depth, "level", 0)
            if level == 0:
                seen.append(name)
            depth.level = level + 1
            try:
                return real(*args, **kwargs)
            finally:
                depth.level = level

        monkeypatch.setattr(module, name, counted)

    for name in ("open_room", "read_ahead", "read_page"):
        spy(connecting, name)
    for name in ("room_for_user", "messages_after", "replay_changes_after"):
        spy(selectors, name)
    return seen


async def test_a_known_room_opens_in_one_hop_and_a_current_client_reads_no_page(lobby, bob, hops):
    sock, hello = await open_socket(bob)
    assert hello == {"type": "sync.done", "seq": 0, "change": C}
    assert hops == ["room_for_user", "read_ahead"]  # the room's id was not known yet
    await sock.disconnect()

    hops.clear()
    sock, hello = await open_socket(bob, query=f"after_seq=0&after_change={C}")
    assert hello == {"type": "sync.done", "seq": 0, "change": C}
    assert hops == ["open_room"]  # and no page read inside it: the client is current
    await sock.disconnect()


async def test_a_resume_behind_reads_its_pages_in_the_same_hop(lobby, alice, bob, hops):
    connecting.learn("lobby", lobby.pk)
    first = await save_message(lobby, alice, "one")
    await save_message(lobby, alice, "two")
    edited = await database_sync_to_async(_edit)(lobby, alice, 1, "one, edited")
    sock, frame = await open_socket(bob, query=f"after_seq=1&after_change={C + 1}")
    frames = [frame, *await recv_until(sock, lambda f: f["type"] == "sync.done")]
    assert hops == ["open_room"]
    assert [(f["type"], f.get("replay")) for f in frames] == [
        ("message.new", True),
        ("message.edited", True),
        ("sync.done", None),
    ]
    assert frames[0]["message"]["seq"] == 2
    assert frames[1]["message"]["id"] == first["id"]
    assert frames[1]["message"]["body"] == "one, edited"
    assert frames[1]["change"] == C + 3 == edited.change
    assert frames[2] == {"type": "sync.done", "seq": 2, "change": C + 3}
    sentinel = await save_message(lobby, alice, "sentinel")
    assert await sock.recv() == {"type": "message.new", "change": C + 4, "message": sentinel}
    await sock.disconnect()


async def test_a_room_that_is_not_the_one_guessed_is_opened_the_long_way(lobby, alice, bob, hops):
    """The slug now names another room (the one remembered was renamed): the socket stops
    listening on the old room's group and gets the new room's messages, and only those."""
    connecting.learn("lobby", lobby.pk)
    await database_sync_to_async(Room.objects.filter(pk=lobby.pk).update)(slug="old-lobby")
    new = await database_sync_to_async(actions.create_room)(creator=alice, slug="lobby", title="L")
    sock, hello = await open_socket(bob)
    assert hello == {"type": "sync.done", "seq": 0, "change": 1}
    assert hops == ["open_room", "read_ahead"]
    assert connecting.guess("lobby") == new.pk
    listeners = get_channel_layer().hub().listeners
    old_group = get_channel_layer().group_channel_name(events.room_group(lobby.pk))
    assert not listeners.get(old_group)
    await save_message(lobby, alice, "in the old room")
    message = await save_message(new, alice, "in the new room")
    assert (await sock.recv())["message"] == message
    await sock.disconnect()


def _during_the_hop(monkeypatch, before) -> threading.Event:
    """Run ``before()`` on the database thread at the start of the connect's hop, then wait there
    until the socket's callback has been handed a live event of the room (the Event returned)."""
    delivered = threading.Event()
    on_room_event = RoomConsumer._on_room_event

    def noting(self, event):
        delivered.set()
        return on_room_event(self, event)

    open_room = connecting.open_room

    def slowed(**kwargs):
        before()
        assert delivered.wait(TIMEOUT)
        return open_room(**kwargs)

    monkeypatch.setattr(RoomConsumer, "_on_room_event", noting)
    monkeypatch.setattr(connecting, "open_room", slowed)
    return delivered


async def test_an_event_arriving_before_access_is_checked_is_never_sent_to_a_stranger(
    secret_room, alice, mallory, monkeypatch
):
    connecting.learn("secret", secret_room.pk)  # as if a member's socket had opened it here
    _during_the_hop(
        monkeypatch, lambda: Message.objects.create(room=secret_room, author=alice, body="psst")
    )
    sock, first = await open_socket(mallory, slug="secret")
    assert first == 4404  # the close, and nothing before it
    assert connecting.guess("secret") is None


async def test_an_event_arriving_during_the_hop_reaches_a_member_once(
    lobby, alice, bob, monkeypatch
):
    connecting.learn("lobby", lobby.pk)
    posted = []
    _during_the_hop(
        monkeypatch,
        lambda: posted.append(Message.objects.create(room=lobby, author=alice, body="hi").seq),
    )
    sock, frame = await open_socket(bob, query=f"after_seq=0&after_change={C}")
    frames = [frame, *await recv_until(sock, lambda f: f["type"] == "sync.done")]
    assert seqs_of(frames) == posted == [1]
    await assert_next_is_sentinel(sock, lobby, alice)  # the live copy was dropped as a duplicate
    await sock.disconnect()


SOCKETS = 20


async def test_with_one_turn_sockets_connecting_at_once_all_sync_and_miss_nothing(
    lobby, alice, bob, monkeypatch
):
    monkeypatch.setitem(settings.PARLEY, "CONNECT_CONCURRENCY", 1)
    monkeypatch.setitem(settings.PARLEY, "MAX_SOCKETS_PER_USER", SOCKETS + 1)
    running, most = 0, 0
    real_open = RoomConsumer._open

    async def counted(self):
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await real_open(self)
        finally:
            running -= 1

    monkeypatch.setattr(RoomConsumer, "_open", counted)
    await save_message(lobby, alice, "before")

    async def sender() -> None:
        for n in range(SOCKETS):
            await save_message(lobby, alice, f"while connecting {n}")

    sending = asyncio.create_task(sender())
    opened = await asyncio.gather(
        *(open_socket(bob, query=f"after_seq=0&after_change={C}") for _ in range(SOCKETS))
    )
    await sending
    assert most == 1
    last = SOCKETS + 1
    for sock, first in opened:
        frames = [first]
        while last not in seqs_of(frames) or not any(f["type"] == "sync.done" for f in frames):
            frames.append(await sock.recv())
        assert sum(f["type"] == "sync.done" for f in frames) == 1
        assert seqs_of(frames) == list(range(1, last + 1))  # each once, in order
    await assert_next_is_sentinel(opened[0][0], lobby, alice)
    for sock, _ in opened:
        await sock.disconnect()
    assert not base.connect_turns().locked()


async def accepted(user) -> Socket:
    """A lobby socket whose handshake was answered, its first frame not read."""
    cookie = await database_sync_to_async(session_cookie)(user)
    headers = [(b"origin", ORIGIN), (b"cookie", cookie.encode())]
    comm = ws.WebsocketCommunicator(application, "/ws/rooms/lobby/", headers=headers)
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected
    return Socket(comm)


async def test_a_socket_that_leaves_while_waiting_for_its_turn_gives_its_place_up(
    lobby, alice, bob, monkeypatch
):
    """One turn: the first socket holds it; of two waiting, one leaves (its place is not taken
    nor kept), the other sends a ping (answered after its sync.done)."""
    monkeypatch.setitem(settings.PARLEY, "CONNECT_CONCURRENCY", 1)
    release = asyncio.Event()
    waiting: list[asyncio.Event] = []
    opened = 0
    real_open, real_take_turn = RoomConsumer._open, RoomConsumer.take_turn

    async def held(self):
        nonlocal opened
        opened += 1
        if opened == 1:
            await release.wait()  # the first socket holds the only turn until released
        await real_open(self)

    async def noted(self):
        waiting.append(asyncio.Event())
        waiting[-1].set()  # its wait starts before the next await of the test's
        return await real_take_turn(self)

    monkeypatch.setattr(RoomConsumer, "_open", held)
    monkeypatch.setattr(RoomConsumer, "take_turn", noted)
    holder = await accepted(bob)
    leaver = await accepted(bob)
    pinger = await accepted(bob)
    await pinger.send({"type": "ping"})
    assert len(waiting) == 3 and opened == 1
    await leaver.disconnect()
    assert leaver.comm.future.done() and not leaver.comm.future.cancelled()  # it ended itself

    release.set()
    assert (await holder.recv())["type"] == "sync.done"
    assert [await pinger.recv(), await pinger.recv()] == [
        {"type": "sync.done", "seq": 0, "change": C},
        {"type": "pong"},
    ]
    assert opened == 2  # the leaver did no connect work
    late, hello = await open_socket(bob)
    assert hello["type"] == "sync.done"
    for sock in (holder, pinger, late):
        await sock.disconnect()
    assert not base.connect_turns().locked()


async def test_a_socket_that_waited_for_its_turn_keeps_no_read_ahead_and_reads_on(
    lobby, bob, monkeypatch
):
    """The read ahead that watched for a client leaving while it waited is given up once the
    turn is taken (an idle socket kept that task for its whole life: ~670 bytes); the frames
    the client sends afterwards are read and answered, none lost."""
    monkeypatch.setitem(settings.PARLEY, "CONNECT_CONCURRENCY", 1)
    release = asyncio.Event()
    waiting = asyncio.Event()
    consumers: list[RoomConsumer] = []
    real_open, real_take_turn = RoomConsumer._open, RoomConsumer.take_turn

    async def held(self):
        consumers.append(self)
        if len(consumers) == 1:
            await release.wait()  # the first socket holds the only turn until released
        await real_open(self)

    async def noted(self):
        if consumers:  # the holder has the turn: this one waits (set before its first await)
            waiting.set()
        return await real_take_turn(self)

    monkeypatch.setattr(RoomConsumer, "_open", held)
    monkeypatch.setattr(RoomConsumer, "take_turn", noted)
    holder = await accepted(bob)
    waiter = await accepted(bob)
    await asyncio.wait_for(waiting.wait(), TIMEOUT)
    release.set()
    assert (await holder.recv())["type"] == "sync.done"
    assert (await waiter.recv())["type"] == "sync.done"
    assert len(consumers) == 2 and consumers[1].ahead is None
    for n in range(3):
        await waiter.send({"type": "ping"})
        assert await waiter.recv() == {"type": "pong"}, n
    for sock in (holder, waiter):
        await sock.disconnect()
    assert not base.connect_turns().locked()
