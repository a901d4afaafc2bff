"""The room WebSocket through the real router, session auth, Redis layer and database.

Every test drives the real ASGI application in-process and waits on frames, never on time. To
show that *nothing else* is on its way to a socket, a test saves one more message (the
"sentinel") and checks it is the very next frame: the room's live events travel one Redis
pub/sub channel in publish order, so anything still in flight (a duplicate, a stray replay) would
arrive before it. ``ping`` -> ``pong`` plays the same part for answers to client frames.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F
from django.test import Client, override_settings

from chat import actions, relay, selectors
from chat.models import Message, OutboxEvent, Room
from config.asgi import application
from config.settings.base import PARLEY
from contract import events
from infra.redis_client import get_redis
from tests.support import ws
from tests.support.rooms import SECRET_CHANGES, C
from tests.support.ws import Socket, open_socket, session_cookie

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("disconnect_leftover_sockets"),
]


# --- helpers -------------------------------------------------------------------------------------
def _insert_without_publishing(room: Room, author, count: int) -> list[int]:
    """Save ``count`` messages the way bulk_create does: no save(), no outbox, nothing published.

    Takes the seqs and change numbers like Room.allocate does (UPDATE first, so the room row
    stays locked until commit) and returns the seqs.
    """
    with transaction.atomic():
        Room.objects.filter(pk=room.pk).update(
            last_seq=F("last_seq") + count, last_change=F("last_change") + count
        )
        last, last_change = (
            Room.objects.filter(pk=room.pk).values_list("last_seq", "last_change").get()
        )
        first = last - count + 1
        Message.objects.bulk_create(
            [
                Message(
                    room=room,
                    author=author,
                    body=f"unpublished {seq}",
                    seq=seq,
                    change=last_change - (last - seq),
                )
                for seq in range(first, last + 1)
            ],
            batch_size=5000,
        )
    return list(range(first, last + 1))


insert_without_publishing = database_sync_to_async(_insert_without_publishing)


@database_sync_to_async
def save_message(room: Room, author, body: str) -> events.MessageData:
    """Message.objects.create: the ORM path (publishes after commit, no rate limit)."""
    return events.message_data(Message.objects.create(room=room, author=author, body=body))


@database_sync_to_async
def message_count() -> int:
    return Message.objects.count()


async def recv_until(sock: Socket, match) -> list[dict]:
    """Every frame received up to and including the first that ``match``es."""
    frames = []
    while True:
        frames.append(await sock.recv())
        if match(frames[-1]):
            return frames


def is_sync_done(frame: dict) -> bool:
    return frame["type"] == "sync.done"


def seqs_of(frames: list[dict]) -> list[int]:
    return [f["message"]["seq"] for f in frames if f["type"] == "message.new"]


async def assert_next_is_sentinel(sock: Socket, room: Room, author) -> int:
    """Save one more message; it must be the socket's very next frame. Returns its seq."""
    sentinel = await save_message(room, author, "sentinel")
    assert await sock.recv() == {
        "type": "message.new",
        "change": C + sentinel["seq"],
        "message": sentinel,
    }
    return sentinel["seq"]


async def assert_pong_is_next(sock: Socket) -> None:
    await sock.send({"type": "ping"})
    assert await sock.recv() == {"type": "pong"}


# --- posting and pushing -------------------------------------------------------------------------
async def test_post_over_websocket_is_acked_and_pushed_to_both_clients(lobby, alice, bob):
    a, hello_a = await open_socket(alice)
    b, hello_b = await open_socket(bob)
    assert hello_a == hello_b == {"type": "sync.done", "seq": 0, "change": C}

    ack = await a.post("hello")

    assert ack["type"] == "message.ack" and ack["created"] is True
    assert ack["message"]["seq"] == 1 and ack["message"]["body"] == "hello"
    for sock in (a, b):
        [message] = await sock.messages(until_seq=1)
        assert message == ack["message"]
    await a.disconnect()
    await b.disconnect()


async def test_orm_create_in_another_thread_is_pushed(lobby, alice, bob):
    a, _ = await open_socket(alice)
    await database_sync_to_async(Message.objects.create)(room=lobby, author=bob, body="from ORM")
    await database_sync_to_async(actions.post_message)(author=bob, room=lobby, body="action")
    assert [m["body"] for m in await a.messages(until_seq=2)] == ["from ORM", "action"]
    await a.disconnect()


async def test_ack_carries_the_message_and_the_client_id(lobby, bob, stream_events):
    sock, _ = await open_socket(bob)
    client_id = str(uuid.uuid4())
    await sock.send({"type": "message.send", "body": "hi", "client_id": client_id})

    ack, pushed = await sock.recv(), await sock.recv()

    assert ack["type"] == "message.ack"
    assert ack["client_id"] == client_id and ack["created"] is True
    assert ack["message"]["author"] == "bob" and ack["message"]["room"] == "lobby"
    assert pushed == {
        "type": "message.new",
        "change": C + ack["message"]["seq"],
        "message": ack["message"],
    }
    [event] = stream_events()
    assert event["payload"]["message"] == ack["message"]
    await sock.disconnect()


async def test_post_without_client_id_is_acked_with_null_client_id(lobby, bob):
    sock, _ = await open_socket(bob)
    await sock.send({"type": "message.send", "body": "no id"})
    [ack] = await recv_until(sock, lambda f: f["type"] == "message.ack")
    assert ack["client_id"] is None and ack["created"] is True
    assert ack["message"]["seq"] == 1
    await sock.disconnect()


async def test_longest_body_of_multibyte_characters_is_accepted(lobby, bob):
    sock, _ = await open_socket(bob)
    body = "\N{GRINNING FACE}" * PARLEY["MAX_BODY_CHARS"]  # 16,000 bytes of UTF-8
    ack = await sock.post(body)
    assert ack["type"] == "message.ack" and ack["message"]["body"] == body
    [message] = await sock.messages(until_seq=1)
    assert message["body"] == body
    await sock.disconnect()


async def test_sockets_only_receive_their_own_room(lobby, secret_room, alice, bob):
    in_lobby, _ = await open_socket(bob, "lobby")
    in_secret, _ = await open_socket(bob, "secret")

    await save_message(secret_room, alice, "secret 1")

    [secret_frame] = await in_secret.messages(until_seq=1)
    assert secret_frame["room"] == "secret" and secret_frame["body"] == "secret 1"
    # The lobby socket's next frame is the lobby's own message, not the secret room's.
    await assert_next_is_sentinel(in_lobby, lobby, alice)
    await in_lobby.disconnect()
    await in_secret.disconnect()


# --- connection refusals -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("username", "slug", "query", "code"),
    [
        (None, "lobby", "", 4401),
        (None, "secret", "", 4401),
        ("mallory", "secret", "", 4404),  # a private room answers as a missing one
        ("mallory", "secret", "after_seq=0", 4404),
        ("bob", "nowhere", "", 4404),
        ("bob", "lobby", "after_seq=-1", 4400),
        ("bob", "lobby", "after_seq=abc", 4400),
        ("bob", "lobby", "after_seq=1.5", 4400),
        ("bob", "lobby", "after_seq=%2B1", 4400),  # "+1"
        ("bob", "lobby", "after_seq=1e3", 4400),
        ("bob", "lobby", "after_seq=%C2%B2", 4400),  # "²": str.isdigit() but not int()-able
        ("bob", "lobby", "after_seq=%D9%A1", 4400),  # "١": a non-ASCII digit
        pytest.param("bob", "lobby", "after_seq=" + "9" * 5000, 4400, id="5000-digits"),
        ("bob", "lobby", "after_seq=1&after_seq=x", 4400),  # the last value counts
    ],
)
async def test_refused_connection_is_closed_with_its_code(
    lobby, secret_room, alice, bob, mallory, username, slug, query, code
):
    user = {"alice": alice, "bob": bob, "mallory": mallory}.get(username)
    sock, result = await open_socket(user, slug, query=query)
    assert result == code
    await sock.disconnect()


async def test_member_opens_private_room(secret_room, bob, alice):
    sock, hello = await open_socket(bob, "secret")
    assert hello == {"type": "sync.done", "seq": 0, "change": SECRET_CHANGES}
    ack = await sock.post("members only")
    assert ack["type"] == "message.ack" and ack["message"]["room"] == "secret"
    await sock.disconnect()


async def test_refused_socket_ignores_frames_and_joins_no_group(lobby, secret_room, mallory):
    sock, code = await open_socket(mallory, "secret")
    assert code == 4404
    layer = get_channel_layer()
    listening = layer._get_layer().listeners
    assert layer.group_channel_name(events.room_group(secret_room.pk)) not in listening
    await sock.send({"type": "message.send", "body": "let me in"})
    await sock.disconnect()
    assert await message_count() == 0


# --- origin --------------------------------------------------------------------------------------
async def _handshake(
    user, origin: bytes | None, host: bytes | None = None
) -> tuple[WebsocketCommunicator, bool]:
    headers = [(b"cookie", (await database_sync_to_async(session_cookie)(user)).encode())]
    if origin is not None:
        headers.append((b"origin", origin))
    if host is not None:
        headers.append((b"host", host))
    comm = ws.WebsocketCommunicator(application, "/ws/rooms/lobby/", headers=headers)
    connected, _ = await comm.connect(timeout=5)
    return comm, connected


@pytest.mark.parametrize(
    "origin",
    [
        b"http://evil.example",
        b"https://localhost.evil.example",
        b"http://evil.example/?localhost",
        b"null",
        b"",
    ],
)
async def test_foreign_origin_is_refused_at_handshake(lobby, bob, origin):
    comm, connected = await _handshake(bob, origin)
    assert connected is False
    await comm.disconnect()


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        (None, None),
        (b"http://localhost", None),
        (b"http://127.0.0.1:8000", b"127.0.0.1:8000"),
        (b"https://localhost", None),
    ],
)
async def test_own_origin_or_no_origin_is_accepted(lobby, bob, origin, host):
    comm, connected = await _handshake(bob, origin, host)
    assert connected is True
    sock = Socket(comm)
    assert await sock.recv() == {"type": "sync.done", "seq": 0, "change": C}
    await assert_pong_is_next(sock)
    await sock.disconnect()


async def test_no_origin_via_open_socket_is_accepted(lobby, bob):
    sock, hello = await open_socket(bob, origin=None)
    assert hello == {"type": "sync.done", "seq": 0, "change": C}
    await sock.disconnect()


# --- resume --------------------------------------------------------------------------------------
async def test_resume_sends_exactly_the_missed_messages(lobby, alice, bob, stream_events):
    earlier, _ = await open_socket(bob)
    await save_message(lobby, alice, "one")
    await save_message(lobby, alice, "two")
    assert [m["seq"] for m in await earlier.messages(until_seq=2)] == [1, 2]
    await earlier.disconnect()
    # bob is offline while 3 and 4 are saved
    await save_message(lobby, alice, "three")
    await save_message(lobby, alice, "four")

    sock, hello = await open_socket(bob, query="after_seq=2")
    rest = await recv_until(sock, is_sync_done)

    frames = [hello, *rest]
    assert [f["type"] for f in frames] == ["message.new", "message.new", "sync.done"]
    assert seqs_of(frames) == [3, 4] and frames[-1]["seq"] == 4
    assert [f["message"]["body"] for f in frames[:2]] == ["three", "four"]
    # A replayed frame is exactly what the live path published.
    published = {e["seq"]: e["payload"]["message"] for e in stream_events()}
    assert [f["message"] for f in frames[:2]] == [published[3], published[4]]
    assert await assert_next_is_sentinel(sock, lobby, alice) == 5
    await sock.disconnect()


async def test_connect_without_after_seq_starts_from_now(lobby, alice, bob):
    for body in ("a", "b", "c"):
        await save_message(lobby, alice, body)
    sock, hello = await open_socket(bob)
    assert hello == {"type": "sync.done", "seq": 3, "change": C + 3}
    assert await assert_next_is_sentinel(sock, lobby, alice) == 4
    await sock.disconnect()


async def test_sync_frame_replays_from_the_given_seq(lobby, alice, bob):
    for body in ("a", "b", "c", "d"):
        await save_message(lobby, alice, body)
    sock, hello = await open_socket(bob)
    assert hello == {"type": "sync.done", "seq": 4, "change": C + 4}

    await sock.send({"type": "sync", "after_seq": 1})
    frames = await recv_until(sock, is_sync_done)

    assert seqs_of(frames) == [2, 3, 4]
    assert len(frames) == 4 and frames[-1] == {"type": "sync.done", "seq": 4, "change": C + 4}
    # A sync at the newest seq replays nothing; the string form of a seq is accepted too.
    await sock.send({"type": "sync", "after_seq": "4"})
    assert await sock.recv() == {"type": "sync.done", "seq": 4, "change": C + 4}
    assert await assert_next_is_sentinel(sock, lobby, alice) == 5
    # Going back again replays the sentinel as well.
    await sock.send({"type": "sync", "after_seq": 3})
    frames = await recv_until(sock, is_sync_done)
    assert seqs_of(frames) == [4, 5] and frames[-1] == {
        "type": "sync.done",
        "seq": 5,
        "change": C + 5,
    }
    await sock.disconnect()


async def test_after_seq_beyond_newest_is_clamped(lobby, alice, bob):
    await save_message(lobby, alice, "a")
    await save_message(lobby, alice, "b")

    sock, hello = await open_socket(bob, query="after_seq=1000")

    assert hello == {"type": "sync.done", "seq": 2, "change": C + 2}
    ack = await sock.post("live after clamp")
    assert ack["message"]["seq"] == 3
    [message] = await sock.messages(until_seq=3)
    assert message == ack["message"]
    # The same clamp applies to a sync frame.
    await sock.send({"type": "sync", "after_seq": 10**30})
    assert await sock.recv() == {"type": "sync.done", "seq": 3, "change": C + 3}
    assert await assert_next_is_sentinel(sock, lobby, alice) == 4
    await sock.disconnect()


async def test_resume_of_an_empty_room(lobby, bob):
    sock, hello = await open_socket(bob, query="after_seq=0")
    assert hello == {"type": "sync.done", "seq": 0, "change": C}
    await sock.disconnect()


@pytest.mark.parametrize("pace", ["lockstep", "free-running"])
async def test_replay_in_bounded_pages_with_a_concurrent_writer(
    lobby, alice, bob, monkeypatch, pace
):
    """50 messages exist; another thread posts 20 more while bob replays from 0 in pages of 7.

    lockstep: the writer commits two messages right before each page is read, so the room grows
    under the replay, then the rest once sync.done is in. free-running: the writer races the
    replay and the live path.
    """
    await insert_without_publishing(lobby, alice, 50)
    step, posted = threading.Semaphore(0), threading.Semaphore(0)
    writer_errors: list[BaseException] = []
    lockstep = pace == "lockstep"

    def write() -> None:
        try:
            for n in range(20):
                if lockstep and not step.acquire(timeout=10):
                    raise TimeoutError("the replay stopped asking for messages")
                actions.post_message(author=alice, room=lobby, body=f"concurrent {n}")
                posted.release()
        except BaseException as exc:  # reported by the assertion below
            writer_errors.append(exc)
        finally:
            connection.close()

    pages: list[tuple[int, int]] = []
    written = 0
    real_messages_after = selectors.messages_after

    def messages_after(*, room_id: int, after_seq: int, limit: int, **bounds):
        nonlocal written
        if lockstep and written < 20:
            for _ in range(2):
                step.release()
            for _ in range(2):
                assert posted.acquire(timeout=10)
            written += 2
        page = real_messages_after(room_id=room_id, after_seq=after_seq, limit=limit, **bounds)
        pages.append((limit, len(page)))
        return page

    monkeypatch.setattr(selectors, "messages_after", messages_after)
    writer = threading.Thread(target=write, name="concurrent-writer")
    with override_settings(PARLEY={**PARLEY, "REPLAY_PAGE_SIZE": 7}):
        writer.start()
        sock, hello = await open_socket(bob, query="after_seq=0")
        frames = [hello]
        while not any(is_sync_done(f) for f in frames):
            frames.append(await sock.recv())
        for _ in range(20):  # the rest need not wait for a page read: they arrive live
            step.release()
        while not (seqs_of(frames) and seqs_of(frames)[-1] >= 70):
            frames.append(await sock.recv())
        await asyncio.to_thread(writer.join, 10)

    assert not writer.is_alive() and writer_errors == []
    assert seqs_of(frames) == list(range(1, 71))
    [done] = [f for f in frames if is_sync_done(f)]
    done_at = frames.index(done)
    assert seqs_of(frames[:done_at])[-1] == done["seq"]  # sync.done follows its replay
    assert all(limit == 7 and size <= 7 for limit, size in pages)
    # The replay goes up to the position read before it (50) and through what it was told of
    # meanwhile; later messages come live after sync.done, in order, once (checked above).
    assert done["seq"] >= 50
    assert await assert_next_is_sentinel(sock, lobby, alice) == 71
    await sock.disconnect()


BIG_ROOM = 100_000


@pytest.mark.timeout(180)
async def test_resume_from_zero_in_a_room_of_100_000_messages(lobby, alice, bob):
    await insert_without_publishing(lobby, alice, BIG_ROOM)

    sock, frame = await open_socket(bob, query="after_seq=0")
    expected = 1
    while frame["type"] == "message.new":
        assert frame["message"]["seq"] == expected
        expected += 1
        frame = await sock.recv()

    assert expected - 1 == BIG_ROOM  # count: seqs 1..100,000, increasing by one, no gap
    assert frame == {"type": "sync.done", "seq": BIG_ROOM, "change": C + BIG_ROOM}
    assert await assert_next_is_sentinel(sock, lobby, alice) == BIG_ROOM + 1
    await sock.disconnect()


# --- gaps, duplicates, reconnects ----------------------------------------------------------------
async def test_lost_live_event_is_filled_from_the_database(lobby, alice, bob):
    await save_message(lobby, alice, "one")
    sock, hello = await open_socket(bob)
    assert hello == {"type": "sync.done", "seq": 1, "change": C + 1}

    [lost] = await insert_without_publishing(lobby, alice, 1)  # seq 2: never published
    after = await save_message(lobby, alice, "three")  # seq 3: published live

    first, second, done = await sock.recv(), await sock.recv(), await sock.recv()
    assert (lost, after["seq"]) == (2, 3)
    assert [first["type"], second["type"]] == ["message.new", "message.new"]
    assert first["message"]["seq"] == 2 and first["message"]["body"] == "unpublished 2"
    # Filled from the database: replay frames (no change number), then the position.
    assert second == {"type": "message.new", "replay": True, "message": after}
    assert done == {"type": "sync.done", "seq": 3, "change": C + 3}
    assert await assert_next_is_sentinel(sock, lobby, alice) == 4
    await sock.disconnect()


async def test_several_lost_events_are_filled_in_pages(lobby, alice, bob):
    sock, _ = await open_socket(bob)
    with override_settings(PARLEY={**PARLEY, "REPLAY_PAGE_SIZE": 3}):
        await insert_without_publishing(lobby, alice, 10)
        await save_message(lobby, alice, "eleven")
        frames = await recv_until(
            sock, lambda f: f["type"] == "message.new" and f["message"]["seq"] == 11
        )
    assert seqs_of(frames) == list(range(1, 12)) and len(frames) == 11
    assert await sock.recv() == {"type": "sync.done", "seq": 11, "change": C + 11}
    assert await assert_next_is_sentinel(sock, lobby, alice) == 12
    await sock.disconnect()


async def test_republished_event_is_delivered_once(lobby, alice, bob, stream_events):
    sock, _ = await open_socket(bob)
    first = await save_message(lobby, alice, "only once")
    assert await sock.recv() == {
        "type": "message.new",
        "change": C + first["seq"],
        "message": first,
    }

    def republish() -> int:
        row = OutboxEvent.objects.get(room=lobby, seq=first["seq"])
        assert row.published_at is not None
        get_redis().delete(relay.published_key("chat.message"))  # the guard no longer knows seq 1
        return relay.publish_rows([row])

    assert await database_sync_to_async(republish)() == 1  # really published a second time
    assert [e["seq"] for e in stream_events()] == [1, 1]
    assert await assert_next_is_sentinel(sock, lobby, alice) == 2
    await sock.disconnect()


async def test_guard_drops_a_republish_before_it_reaches_sockets(lobby, alice, bob, stream_events):
    sock, _ = await open_socket(bob)
    first = await save_message(lobby, alice, "once")
    assert await sock.recv() == {
        "type": "message.new",
        "change": C + first["seq"],
        "message": first,
    }

    def republish() -> int:
        return relay.publish_rows([OutboxEvent.objects.get(room=lobby, seq=first["seq"])])

    assert await database_sync_to_async(republish)() == 0
    assert [e["seq"] for e in stream_events()] == [1]
    assert await assert_next_is_sentinel(sock, lobby, alice) == 2
    await sock.disconnect()


async def _reconnect_via_group_send(room: Room) -> None:
    await get_channel_layer().group_send(events.room_group(room.pk), {"type": "layer.reconnected"})


async def _reconnect_via_layer_announcement(room: Room) -> None:
    # What the layer itself does once its Redis subscription is restored.
    get_channel_layer()._get_layer().announce_reconnect()


@pytest.mark.parametrize(
    "announce",
    [_reconnect_via_group_send, _reconnect_via_layer_announcement],
    ids=["group_send", "layer_announcement"],
)
async def test_layer_reconnected_catches_up_from_the_database(lobby, alice, bob, announce):
    sock, hello = await open_socket(bob)
    assert hello == {"type": "sync.done", "seq": 0, "change": C}
    await insert_without_publishing(lobby, alice, 3)  # "published while Redis was away"

    await announce(lobby)

    frames = [await sock.recv() for _ in range(3)]
    assert seqs_of(frames) == [1, 2, 3] and len(frames) == 3
    assert await sock.recv() == {"type": "sync.done", "seq": 3, "change": C + 3}
    assert await assert_next_is_sentinel(sock, lobby, alice) == 4
    # Nothing missing: another announcement sends nothing.
    await announce(lobby)
    await assert_pong_is_next(sock)
    # The socket re-checks its access after a reconnect (chat.access) and holds live events
    # meanwhile: the next message arrives live, or, if it came during the check, replayed and
    # followed by the position; either way once, and the one after is live.
    fifth = await save_message(lobby, alice, "fifth")
    frame = await sock.recv()
    assert frame["type"] == "message.new" and frame["message"] == fifth
    if frame.get("replay"):
        assert await sock.recv() == {"type": "sync.done", "seq": 5, "change": C + 5}
    assert await assert_next_is_sentinel(sock, lobby, alice) == 6
    await sock.disconnect()


# --- many sockets posting at once (the batched write path) -----------------------------------
@override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 1000})
async def test_sockets_posting_at_once_are_all_acked_and_seen_once_in_order(lobby, alice, bob):
    """Posts that arrive while a batch is in the database are written together; every post
    gets its own ack, and a listener sees 1..N once, in order."""
    listener, _ = await open_socket(bob)
    posters = [(await open_socket(alice if i % 2 else bob))[0] for i in range(5)]
    per_socket = 20

    async def post_all(sock: Socket, n: int) -> list[dict]:
        client_ids = [str(uuid.uuid4()) for _ in range(per_socket)]
        for i, client_id in enumerate(client_ids):  # without waiting for the acks
            body = f"s{n} {i}"
            await sock.send({"type": "message.send", "body": body, "client_id": client_id})
        acks = {}
        while len(acks) < per_socket:
            frame = await sock.recv()
            if frame["type"] == "message.ack":
                acks[frame["client_id"]] = frame
        return [acks[c] for c in client_ids]

    answers = await asyncio.gather(*(post_all(s, n) for n, s in enumerate(posters)))
    total = per_socket * len(posters)
    for n, acks in enumerate(answers):
        assert all(a["created"] for a in acks)
        assert [a["message"]["body"] for a in acks] == [f"s{n} {i}" for i in range(per_socket)]
        seqs = [a["message"]["seq"] for a in acks]
        assert seqs == sorted(seqs)  # a socket's posts keep their order
    assert sorted(a["message"]["seq"] for acks in answers for a in acks) == list(
        range(1, total + 1)
    )
    received = await listener.messages(until_seq=total)
    assert [m["seq"] for m in received] == list(range(1, total + 1))
    assert await listener.nothing_pending()
    for sock in (listener, *posters):
        await sock.disconnect()


# --- bad input -----------------------------------------------------------------------------------
ABSENT = "absent"  # no client_id key in the error frame
CLIENT_ID = "6f1e5a3c-8a55-4a7e-9c1d-0a4b2d9f7e10"


def _send(**fields) -> dict:
    return {"type": "message.send", "client_id": CLIENT_ID, **fields}


BAD_FRAMES = [
    # (id, frame, error code, client_id in the error frame)
    ("non-json", "hello there", "bad_json", ABSENT),
    ("truncated-json", '{"type": "ping"', "bad_json", ABSENT),
    ("empty-text", "", "bad_json", ABSENT),
    ("binary", b"\x00\x01\x02", "binary_not_supported", ABSENT),
    ("empty-binary", b"", "binary_not_supported", ABSENT),
    ("json-as-binary", b'{"type": "ping"}', "binary_not_supported", ABSENT),
    ("array", '[{"type": "ping"}]', "not_an_object", ABSENT),
    ("number", "42", "not_an_object", ABSENT),
    ("string", '"ping"', "not_an_object", ABSENT),
    ("null", "null", "not_an_object", ABSENT),
    ("deeply-nested", "[" * 5000 + "]" * 5000, "bad_json", ABSENT),
    ("unknown-type", {"type": "message.delete", "id": 1}, "unknown_type", ABSENT),
    ("missing-type", {"body": "hi", "client_id": CLIENT_ID}, "unknown_type", ABSENT),
    ("null-type", {"type": None}, "unknown_type", ABSENT),
    ("list-type", {"type": ["ping"]}, "unknown_type", ABSENT),
    ("missing-body", {"type": "message.send", "client_id": CLIENT_ID}, "body_required", CLIENT_ID),
    ("empty-body", _send(body=""), "body_required", CLIENT_ID),
    ("whitespace-body", _send(body=" \n\t "), "body_required", CLIENT_ID),
    ("body-too-long", _send(body="x" * (PARLEY["MAX_BODY_CHARS"] + 1)), "body_too_long", CLIENT_ID),
    ("number-body", _send(body=42), "body_required", CLIENT_ID),
    ("list-body", _send(body=["hi"]), "body_required", CLIENT_ID),
    ("object-body", _send(body={"text": "hi"}), "body_required", CLIENT_ID),
    ("bool-body", _send(body=True), "body_required", CLIENT_ID),
    ("nul-body", _send(body="a\x00b"), "body_invalid", CLIENT_ID),
    ("lone-surrogate-body", '{"type":"message.send","body":"a\\ud800b"}', "body_invalid", None),
    ("invalid-client-id", _send(body="hi", client_id="not-a-uuid"), "invalid_client_id", ABSENT),
    ("number-client-id", _send(body="hi", client_id=12345), "invalid_client_id", ABSENT),
    ("empty-client-id", _send(body="hi", client_id=""), "invalid_client_id", ABSENT),
    ("object-client-id", _send(body="hi", client_id={"a": 1}), "invalid_client_id", ABSENT),
    (
        "frame-too-large",
        _send(body="x" * (PARLEY["MAX_FRAME_BYTES"] + 1)),
        "frame_too_large",
        ABSENT,
    ),
    ("sync-negative", {"type": "sync", "after_seq": -1}, "invalid_seq", ABSENT),
    ("sync-text", {"type": "sync", "after_seq": "abc"}, "invalid_seq", ABSENT),
    ("sync-float", {"type": "sync", "after_seq": 1.5}, "invalid_seq", ABSENT),
    ("sync-bool", {"type": "sync", "after_seq": True}, "invalid_seq", ABSENT),
    ("sync-null", {"type": "sync", "after_seq": None}, "invalid_seq", ABSENT),
    ("sync-missing", {"type": "sync"}, "invalid_seq", ABSENT),
    ("sync-list", {"type": "sync", "after_seq": [1]}, "invalid_seq", ABSENT),
    ("sync-superscript", {"type": "sync", "after_seq": "\u00b2"}, "invalid_seq", ABSENT),
    ("sync-arabic-digit", {"type": "sync", "after_seq": "\u0661"}, "invalid_seq", ABSENT),
    ("sync-too-many-digits", {"type": "sync", "after_seq": "9" * 5000}, "invalid_seq", ABSENT),
    (
        "number-too-many-digits",
        '{"type": "sync", "after_seq": ' + "9" * 5000 + "}",
        "bad_json",
        ABSENT,
    ),
]


@pytest.mark.parametrize(
    ("frame", "code", "client_id"),
    [case[1:] for case in BAD_FRAMES],
    ids=[case[0] for case in BAD_FRAMES],
)
async def test_bad_frame_gets_one_error_and_changes_nothing(
    lobby, bob, stream_events, frame, code, client_id
):
    sock, _ = await open_socket(bob)

    if frame in ("", b""):  # send_to() refuses empty frames; a real client can send them
        key = "text" if isinstance(frame, str) else "bytes"
        await sock.comm.send_input({"type": "websocket.receive", key: frame})
    else:  # as raw text: out-of-contract on purpose (tests.support.contract checks dicts)
        await sock.send(json.dumps(frame) if isinstance(frame, dict | list) else frame)
    error = await sock.recv()

    assert error["type"] == "error" and error["code"] == code
    assert isinstance(error["detail"], str) and error["detail"]
    if client_id is ABSENT:
        assert "client_id" not in error
    else:
        assert error["client_id"] == client_id
    await assert_pong_is_next(sock)  # exactly one error frame, and the socket still works
    assert await message_count() == 0
    assert stream_events() == []
    ack = await sock.post("still here")
    assert ack["type"] == "message.ack" and ack["created"] is True
    assert ack["message"]["seq"] == 1
    await sock.disconnect()


async def test_frame_limit_counts_bytes_not_characters(lobby, bob):
    sock, _ = await open_socket(bob)
    with override_settings(PARLEY={**PARLEY, "MAX_FRAME_BYTES": 100}):
        # 80 characters, 160 bytes of UTF-8
        await sock.send(json.dumps({"type": "ping", "pad": "é" * 60}, ensure_ascii=False))
        assert (await sock.recv())["code"] == "frame_too_large"
        await sock.send(json.dumps({"type": "ping", "pad": "e" * 60}))
        assert await sock.recv() == {"type": "pong"}
    await sock.disconnect()


# --- idempotency, rate limit, flood --------------------------------------------------------------
async def test_same_client_id_twice_is_one_message(lobby, bob, stream_events):
    sock, _ = await open_socket(bob)
    client_id = str(uuid.uuid4())

    first = await sock.post("once", client_id=client_id)
    again = await sock.post("once", client_id=client_id)

    assert first["type"] == again["type"] == "message.ack"
    assert first["created"] is True and again["created"] is False
    assert again["message"] == first["message"]
    assert await message_count() == 1
    assert len(stream_events()) == 1
    # One message.new for it (skipped by post() above) and nothing more: bob's socket saw seq 1
    # once; a sync from 0 re-sends it once; the next live frame is the sentinel.
    await sock.send({"type": "sync", "after_seq": 0})
    frames = await recv_until(sock, is_sync_done)
    assert seqs_of(frames) == [1]
    assert await assert_next_is_sentinel(sock, lobby, bob) == 2
    await sock.disconnect()


async def test_same_client_id_twice_pushes_one_message_new(lobby, alice, bob):
    watcher, _ = await open_socket(alice)
    sock, _ = await open_socket(bob)
    client_id = str(uuid.uuid4())
    await sock.post("once", client_id=client_id)
    await sock.post("once", client_id=client_id)

    [message] = await watcher.messages(until_seq=1)
    assert message["body"] == "once"
    assert await assert_next_is_sentinel(watcher, lobby, alice) == 2
    await watcher.disconnect()
    await sock.disconnect()


async def test_rate_limit_refuses_the_post_over_the_limit(lobby, bob, stream_events):
    sock, _ = await open_socket(bob)
    with override_settings(PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 3}):
        acks = [await sock.post(f"post {n}") for n in range(3)]
        client_id = str(uuid.uuid4())
        refused = await sock.post("one too many", client_id=client_id)
        retry = await sock.post("post 0", client_id=acks[0]["client_id"])

    assert [a["type"] for a in acks] == ["message.ack"] * 3
    assert refused["type"] == "error" and refused["code"] == "rate_limited"
    assert refused["client_id"] == client_id
    # When to try again: what is left of the limit's window, in whole seconds.
    assert 1 <= refused["retry_after"] <= PARLEY["RATE_LIMIT_WINDOW_SECONDS"]
    # A retry of a message already created is answered, not limited.
    assert retry["type"] == "message.ack" and retry["created"] is False
    assert retry["message"] == acks[0]["message"]
    assert await message_count() == 3
    assert [e["seq"] for e in stream_events()] == [1, 2, 3]
    await sock.disconnect()


async def test_flood_of_bad_frames_closes_with_4429(lobby, bob):
    sock, _ = await open_socket(bob)
    with override_settings(PARLEY={**PARLEY, "FLOOD_CLOSE_AFTER_ERRORS": 5}):
        for _ in range(5):
            await sock.send("not json")
        errors = [await sock.recv() for _ in range(5)]
        code = await sock.close_code()
    assert [e["code"] for e in errors] == ["bad_json"] * 5
    assert code == 4429
    await sock.disconnect()


@pytest.mark.parametrize("good", ["ping", "post", "sync"])
async def test_a_good_frame_resets_the_flood_count(lobby, bob, good):
    sock, _ = await open_socket(bob)
    with override_settings(PARLEY={**PARLEY, "FLOOD_CLOSE_AFTER_ERRORS": 5}):
        for _ in range(4):
            await sock.send("not json")
        assert [(await sock.recv())["code"] for _ in range(4)] == ["bad_json"] * 4
        if good == "ping":
            await assert_pong_is_next(sock)
        elif good == "post":
            assert (await sock.post("good"))["type"] == "message.ack"
            # Its live copy follows the ack, from Redis: take it now, or under load it lands
            # among the error frames read next.
            await sock.next(lambda f: f["type"] == "message.new")
        else:
            await sock.send({"type": "sync", "after_seq": 0})
            await recv_until(sock, is_sync_done)
        for _ in range(4):
            await sock.send(json.dumps({"type": "nope"}))  # raw: out-of-contract on purpose
        assert [(await sock.recv())["code"] for _ in range(4)] == ["unknown_type"] * 4
        await assert_pong_is_next(sock)  # still open after 4 + good + 4
        for _ in range(5):
            await sock.send(b"binary")
        assert [(await sock.recv())["code"] for _ in range(5)] == ["binary_not_supported"] * 5
        assert await sock.close_code() == 4429
    await sock.disconnect()


async def test_refused_posts_count_towards_the_flood(lobby, bob):
    sock, _ = await open_socket(bob)
    with override_settings(PARLEY={**PARLEY, "FLOOD_CLOSE_AFTER_ERRORS": 3}):
        for _ in range(3):
            await sock.send(json.dumps({"type": "message.send", "body": ""}))  # raw, on purpose
        assert [(await sock.recv())["code"] for _ in range(3)] == ["body_required"] * 3
        assert await sock.close_code() == 4429
    await sock.disconnect()


# --- ping ----------------------------------------------------------------------------------------
async def test_ping_is_answered_with_pong(lobby, bob):
    sock, _ = await open_socket(bob)
    await assert_pong_is_next(sock)
    await sock.send({"type": "ping", "extra": "ignored"})
    assert await sock.recv() == {"type": "pong"}
    await sock.disconnect()


# --- other write paths ---------------------------------------------------------------------------
async def test_message_saved_in_the_admin_is_pushed(lobby, bob):
    sock, _ = await open_socket(bob)

    def add_in_admin():
        staff = get_user_model().objects.create_superuser("root", password="pw-root")
        client = Client()
        client.force_login(staff)
        return client.post(
            "/admin/chat/message/add/",
            {"room": lobby.pk, "author": bob.pk, "body": "from the admin"},
        )

    response = await database_sync_to_async(add_in_admin)()

    assert response.status_code == 302, response.content[:2000]
    frame = await sock.recv()
    assert frame["type"] == "message.new"
    assert frame["message"]["seq"] == 1 and frame["message"]["body"] == "from the admin"
    assert frame["message"]["author"] == "bob" and frame["message"]["room"] == "lobby"
    assert await assert_next_is_sentinel(sock, lobby, bob) == 2
    await sock.disconnect()
