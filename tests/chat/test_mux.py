"""``/ws/``, one socket for many rooms, through the real router, session auth, Redis layer and
database: every message once and in order per room across a disconnect and resume, posting to
any subscribed room, unsubscribe, the subscription cap, access lost for one room, bad frames.

Frames are checked against docs/asyncapi.yaml (tests.support.ws), so every one carries its room.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import override_settings

from chat import actions, selectors
from chat.consumers.mux import MuxConsumer
from chat.models import Message, Room
from config.settings.base import PARLEY
from tests.chat.test_consumers import insert_without_publishing
from tests.support.rooms import C
from tests.support.ws import open_path, open_socket

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("disconnect_leftover_sockets"),
]

ROOMS = 20
PER_ROOM = 12


@database_sync_to_async
def make_rooms(owner, member, count: int, *, private: bool = False) -> list[Room]:
    """Rooms of ``owner`` with ``member`` in; a public one's joins take changes 1 and 2 (C) like
    the lobby's."""
    rooms = []
    for i in range(count):
        room = actions.create_room(
            creator=owner, slug=f"room-{i}", title=f"Room {i}", is_private=private
        )
        if private:
            room.memberships.create(user=member)
        else:
            actions.join_room(user=member, room=room)
        rooms.append(room)
    return rooms


@database_sync_to_async
def post(room: Room, author, body: str) -> None:
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 100_000}):
        actions.post_message(author=author, room=room, body=body)


class Follower:
    """What a client following rooms on /ws/ keeps: per room the seqs it has, in the order they
    came, and its resume position (the highest seq; the change of the last frame with one)."""

    def __init__(self) -> None:
        self.seqs: dict[str, list[int]] = {}
        self.position: dict[str, tuple[int, int]] = {}

    def take(self, frame: dict) -> None:
        room = frame["room"]
        seq, change = self.position.get(room, (0, 0))
        if frame["type"] == "message.new":
            self.seqs.setdefault(room, []).append(frame["message"]["seq"])
            seq = max(seq, frame["message"]["seq"])
        if frame["type"] == "sync.done":
            seq = frame["seq"]
        if "change" in frame and frame["type"] != "error":
            change = frame["change"]
        self.position[room] = (seq, change)

    def complete(self, rooms: list[Room], count: int) -> bool:
        return all(len(self.seqs.get(r.slug, ())) >= count for r in rooms)


async def following(user, rooms: list[Room]):
    """A /ws/ socket of ``user`` subscribed to ``rooms`` from now."""
    sock, _ = await open_path("/ws/", user)
    for room in rooms:
        await subscribe(sock, room.slug)
    return sock


async def subscribe(sock, room: str, **fields: object) -> dict:
    """Subscribe; the room's sync.done (the replay's frames are skipped)."""
    await sock.send({"type": "subscribe", "room": room, **fields})
    return await sock.next(lambda f: f["type"] in ("sync.done", "error") and f["room"] == room)


async def test_twenty_rooms_twenty_senders_one_socket_resumed_midway(alice, bob):
    rooms = await make_rooms(alice, bob, ROOMS)
    sock, ready = await open_path("/ws/", bob)
    assert ready == {"room": None, "type": "ready", "max_subscriptions": 100}
    for room in rooms:
        assert (await subscribe(sock, room.slug))["seq"] == 0
    follower = Follower()
    for room in rooms:
        follower.position[room.slug] = (0, 0)

    async def sender(room: Room) -> None:
        for i in range(PER_ROOM):
            await post(room, alice, f"{room.slug} {i}")

    senders = asyncio.gather(*(sender(room) for room in rooms))
    # Take about a third, then drop the connection while the senders go on.
    while sum(len(s) for s in follower.seqs.values()) < ROOMS * PER_ROOM // 3:
        follower.take(await sock.recv())
    await sock.disconnect()

    sock, ready = await open_path("/ws/", bob)
    for room in rooms:
        seq, change = follower.position[room.slug]
        await sock.send(
            {"type": "subscribe", "room": room.slug, "after_seq": seq, "after_change": change}
        )
    await senders
    while not follower.complete(rooms, PER_ROOM):
        follower.take(await sock.recv())
    for room in rooms:
        assert follower.seqs[room.slug] == list(range(1, PER_ROOM + 1)), room.slug
    # Nothing more on its way: every room's sync.done came (or comes now), then the pong.
    await sock.send({"type": "ping"})
    rest = await _until(sock, "pong")
    assert {f["type"] for f in rest} <= {"sync.done", "pong"}
    await sock.disconnect()


async def test_posts_to_any_subscribed_room_are_acked_in_order_before_their_live_copy(alice, bob):
    rooms = await make_rooms(alice, bob, 3)
    sock = await following(bob, rooms)
    ids = []
    for i in range(6):
        client_id = str(uuid.uuid4())
        ids.append(client_id)
        room = rooms[i % 3].slug
        await sock.send(
            {"type": "message.send", "room": room, "body": f"hi {i}", "client_id": client_id}
        )
    frames = []
    while sum(f["type"] == "message.new" for f in frames) < 6:
        frames.append(await sock.recv())
    for room in rooms:
        mine = [f for f in frames if f["room"] == room.slug]
        kinds = [f["type"] for f in mine]
        assert kinds.count("message.ack") == 2 and kinds.count("message.new") == 2
        acks = [f["message"]["seq"] for f in mine if f["type"] == "message.ack"]
        assert acks == [1, 2]
        for f in mine:  # each ack before the live copy of its message
            if f["type"] == "message.new":
                seq = f["message"]["seq"]
                ack_at = next(
                    i
                    for i, g in enumerate(mine)
                    if g["type"] == "message.ack" and g["message"]["seq"] == seq
                )
                assert ack_at < mine.index(f)
    for i, room in enumerate(rooms):  # each room's acks in the order its posts were sent
        acked = [
            f["client_id"] for f in frames if f["type"] == "message.ack" and f["room"] == room.slug
        ]
        assert acked == ids[i::3]
    await sock.disconnect()


async def test_unsubscribe_stops_delivery_and_the_other_rooms_go_on(alice, bob):
    rooms = await make_rooms(alice, bob, 2)
    sock = await following(bob, rooms)
    await sock.send({"type": "unsubscribe", "room": rooms[0].slug})
    assert await sock.recv() == {"room": rooms[0].slug, "type": "unsubscribed"}
    await post(rooms[0], alice, "unseen")
    await post(rooms[1], alice, "seen")
    frame = await sock.recv()
    assert frame["room"] == rooms[1].slug and frame["message"]["body"] == "seen"
    await sock.send({"type": "message.send", "room": rooms[0].slug, "body": "x"})
    assert (await sock.recv())["code"] == "not_subscribed"
    assert await _count(rooms[0]) == 1  # nothing written
    # Subscribing again resumes from where the client says.
    done = await subscribe(sock, rooms[0].slug, after_seq=0, after_change=0)
    assert done == {"room": rooms[0].slug, "type": "sync.done", "seq": 1, "change": C + 1}
    await sock.disconnect()


async def test_the_subscription_cap_refuses_and_changes_nothing(alice, bob):
    rooms = await make_rooms(alice, bob, 3)
    with override_settings(PARLEY={**PARLEY, "MAX_SUBSCRIPTIONS": 2}):
        sock, ready = await open_path("/ws/", bob)
        assert ready["max_subscriptions"] == 2
        await subscribe(sock, rooms[0].slug)
        await subscribe(sock, rooms[1].slug)
        refused = await subscribe(sock, rooms[2].slug)
        assert refused["type"] == "error" and refused["code"] == "too_many_subscriptions"
        await post(rooms[2], alice, "not followed")
        await post(rooms[1], alice, "followed")
        assert (await sock.recv())["room"] == rooms[1].slug
        await sock.send({"type": "unsubscribe", "room": rooms[0].slug})
        await sock.next(lambda f: f["type"] == "unsubscribed")
        assert (await subscribe(sock, rooms[2].slug, after_seq=0))["seq"] == 1
    await sock.disconnect()


async def test_losing_one_room_ends_its_subscription_and_the_socket_stays(alice, bob):
    rooms = await make_rooms(alice, bob, 2, private=True)
    sock = await following(bob, rooms)
    await database_sync_to_async(actions.remove_member)(
        remover=alice, room=rooms[0], username="bob"
    )
    ended = await sock.next(lambda f: f["type"] == "unsubscribed")
    assert ended == {
        "room": rooms[0].slug,
        "type": "unsubscribed",
        "code": 4403,
        "reason": "room no longer readable",
    }
    await post(rooms[0], alice, "secret now")
    await post(rooms[1], alice, "still yours")
    frame = await sock.recv()
    assert frame["room"] == rooms[1].slug and frame["message"]["body"] == "still yours"
    refused = await subscribe(sock, rooms[0].slug)
    assert refused["code"] == "room_not_found"
    await sock.disconnect()


async def test_losing_the_credential_closes_the_socket_4401(alice, bob):
    rooms = await make_rooms(alice, bob, 2)
    sock = await following(bob, rooms)

    @database_sync_to_async
    def change_password() -> None:
        bob.set_password("another")
        bob.save()

    await change_password()
    assert await sock.close_code() == 4401


async def test_anonymous_is_closed_4401():
    assert (await open_path("/ws/", None))[1] == 4401


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ('["a list"]', "not_an_object"),
        ('{"type": "subscribe"}', "room_required"),
        ('{"type": "subscribe", "room": "nowhere"}', "room_not_found"),
        ('{"type": "subscribe", "room": "room-0", "after_seq": -1}', "invalid_seq"),
        ('{"type": "subscribe", "room": "room-0"}', "already_subscribed"),
        ('{"type": "unsubscribe", "room": "room-1"}', "not_subscribed"),
        ('{"type": "message.send", "room": "room-1", "body": "x"}', "not_subscribed"),
        ('{"type": "message.send", "room": "room-0", "body": ""}', "body_required"),
        ('{"type": "shout", "room": "room-0"}', "unknown_type"),
        ('{"type": "typing", "room": "room-0"}', "unsupported"),
    ],
)
async def test_bad_frames_get_an_error_and_change_nothing(alice, bob, frame, code):
    rooms = await make_rooms(alice, bob, 2, private=True)
    sock, _ = await open_path("/ws/", bob)
    await subscribe(sock, rooms[0].slug)
    await sock.send(frame)
    error = await sock.recv()
    assert error["type"] == "error" and error["code"] == code
    # Nothing changed: still following room-0 only, nothing written.
    await post(rooms[0], alice, "after")
    assert (await sock.recv())["message"]["body"] == "after"
    await post(rooms[1], alice, "unfollowed")
    await sock.send({"type": "ping"})
    assert await sock.recv() == {"room": None, "type": "pong"}
    assert await _count(rooms[0]) == 1
    await sock.disconnect()


async def test_the_room_socket_is_unchanged_beside_it(alice, bob, lobby):
    room_sock, done = await open_socket(bob)
    assert done == {"type": "sync.done", "seq": 0, "change": C}
    mux, _ = await open_path("/ws/", bob)
    await subscribe(mux, "lobby")
    await post(lobby, alice, "both")
    assert "room" not in await room_sock.recv()
    assert (await mux.recv())["room"] == "lobby"
    await room_sock.disconnect()
    await mux.disconnect()


async def _until(sock, frame_type: str) -> list[dict]:
    frames = []
    while not frames or frames[-1]["type"] != frame_type:
        frames.append(await sock.recv())
    return frames


@database_sync_to_async
def _count(room: Room) -> int:
    return Message.objects.filter(room=room).count()


async def test_the_frame_rate_applies_to_the_socket_as_a_whole(alice, bob):
    rooms = await make_rooms(alice, bob, 2)
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_FRAMES": 3}):
        sock, _ = await open_path("/ws/", bob)
        await subscribe(sock, rooms[0].slug)
        await subscribe(sock, rooms[1].slug)
        await sock.send({"type": "ping"})
        assert (await sock.recv())["type"] == "pong"
        await sock.send({"type": "unsubscribe", "room": rooms[0].slug})
        refused = await sock.recv()
        assert refused["type"] == "error" and refused["code"] == "rate_limited"
        assert refused["room"] is None and refused["retry_after"] >= 1
    await post(rooms[0], alice, "still followed")  # the refused unsubscribe changed nothing
    assert (await sock.recv())["room"] == rooms[0].slug
    await sock.disconnect()


async def test_a_redis_reconnect_catches_each_room_up_from_the_database(alice, bob):
    """What Redis carried while it was away is lost to the live layer: each subscription
    replays its own room from the database, tagged with it, and ends with its sync.done."""
    rooms = await make_rooms(alice, bob, 3)
    sock = await following(bob, rooms)
    for count, room in enumerate(rooms, start=1):
        await insert_without_publishing(room, alice, count)  # "published while Redis was away"
    get_channel_layer()._get_layer().announce_reconnect()
    follower = Follower()
    done: set[str] = set()
    while len(done) < len(rooms):
        frame = await sock.recv()
        follower.take(frame)
        if frame["type"] == "sync.done":
            done.add(frame["room"])
    for count, room in enumerate(rooms, start=1):
        assert follower.seqs[room.slug] == list(range(1, count + 1))
        assert follower.position[room.slug] == (count, C + count)
    await post(rooms[0], alice, "live again")
    frame = await sock.recv()
    assert frame["room"] == rooms[0].slug and frame["change"] == C + 2 and "replay" not in frame
    await sock.disconnect()


async def test_access_lost_while_a_subscribe_reads_access_is_not_missed(alice, bob, monkeypatch):
    """The room's access.revoked reaches the socket after its subscribe read access (and before
    the subscription exists): the subscription's first replay re-checks, and ends it."""
    rooms = await make_rooms(alice, bob, 1, private=True)
    handed = threading.Event()
    original_changed, original_read = MuxConsumer.access_changed, selectors.room_for_user

    def access_changed(self, message, *, definitive):
        original_changed(self, message, definitive=definitive)
        handed.set()

    def room_for_user(*, user, slug):
        room = original_read(user=user, slug=slug)
        actions.remove_member(remover=alice, room=room, username="bob")
        assert handed.wait(5)  # the gate handed the event over meanwhile
        return room

    monkeypatch.setattr(MuxConsumer, "access_changed", access_changed)
    monkeypatch.setattr(selectors, "room_for_user", room_for_user)
    sock, _ = await open_path("/ws/", bob)
    await sock.send({"type": "subscribe", "room": rooms[0].slug})
    assert await sock.recv() == {
        "room": rooms[0].slug,
        "type": "unsubscribed",
        "code": 4403,
        "reason": "room no longer readable",
    }
    await sock.send({"type": "ping"})
    assert await sock.recv() == {"room": None, "type": "pong"}
    await sock.disconnect()


async def test_presence_and_typing_per_subscription_when_asked(alice, bob, lobby):
    """A subscription with "presence": true is online in its room and gets its presence and
    typing frames, tagged with the room; one without gets neither."""
    rooms = await make_rooms(alice, bob, 1)
    bob_mux = await following(bob, rooms)  # rooms[0] without presence
    await subscribe(bob_mux, "lobby", presence=True)
    assert await bob_mux.recv() == {"room": "lobby", "type": "presence", "online": ["bob"]}
    alice_sock, _ = await open_socket(alice, query="presence=1")
    seen = await bob_mux.next(lambda f: f["type"] == "presence" and "alice" in f["online"])
    assert seen["room"] == "lobby"
    await alice_sock.send({"type": "typing"})
    assert await bob_mux.next(lambda f: f["type"] == "typing") == {
        "room": "lobby",
        "type": "typing",
        "user": "alice",
    }
    await bob_mux.send({"type": "typing", "room": "lobby"})
    assert (await alice_sock.next(lambda f: f["type"] == "typing"))["user"] == "bob"
    await bob_mux.send({"type": "typing", "room": rooms[0].slug})
    assert (await bob_mux.next(lambda f: f["type"] == "error"))["code"] == "unsupported"
    await bob_mux.send({"type": "unsubscribe", "room": "lobby"})
    await bob_mux.next(lambda f: f["type"] == "unsubscribed")
    left = await alice_sock.next(lambda f: f["type"] == "presence" and "bob" not in f["online"])
    assert left["online"] == ["alice"]
    await alice_sock.disconnect()
    await bob_mux.disconnect()
