"""A process' recent replay pages (chat.replaypages): sockets resuming from the same place read
the room's messages once, and a page cut from what was kept is what a read would have returned
at that moment: edits, deletes and room events after it are never missed. Real database, real
sockets through the router, layer and Redis."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat import actions, connecting, replaypages, selectors
from chat.catchup import MessagesAfter
from chat.models import Message
from tests.chat.test_consumers import recv_until, save_message
from tests.support.rooms import C
from tests.support.ws import open_socket

PAGE = 200
_messages_after = selectors.messages_after  # not counted by ``reads``


@pytest.fixture
def reads(monkeypatch):
    """The (after_seq, up_to_seq, limit) of every messages_after read from the database."""
    seen: list[tuple[int, int | None, int]] = []
    real = selectors.messages_after

    def counted(*, room_id, after_seq, limit, up_to_seq=None):
        seen.append((after_seq, up_to_seq, limit))
        return real(room_id=room_id, after_seq=after_seq, limit=limit, up_to_seq=up_to_seq)

    monkeypatch.setattr(selectors, "messages_after", counted)
    return seen


def _post(room, author, count: int, start: int = 1) -> None:
    for n in range(start, start + count):
        actions.post_message(author=author, room=room, body=f"m{n}")


def _page(room, after_seq: int, limit: int = PAGE) -> list:
    """The page a replay at the room's current position asks for, through the kept pages."""
    seq, change = selectors.room_position(room_id=room.pk)
    return replaypages.messages_after(room.pk, MessagesAfter(after_seq, seq, limit), change)


def _fresh(room, after_seq: int, limit: int = PAGE) -> list:
    return _messages_after(room_id=room.pk, after_seq=after_seq, limit=limit)


def _bodies(rows) -> list[str]:
    return [message["body"] for message, _change in rows]


@pytest.mark.django_db
def test_the_same_resume_reads_the_database_once_and_frames_are_made_once(lobby, alice, reads):
    _post(lobby, alice, 5)
    first = _page(lobby, 0)
    second = _page(lobby, 0)
    assert first == second == _fresh(lobby, 0)
    assert reads == [(0, 5, PAGE)]
    frames = [first.frame(m) for m, _ in first]
    assert [second.frame(m) for m, _ in second] == frames
    assert all(a is b for a, b in zip(frames, (second.frame(m) for m, _ in second), strict=True))
    # a later resume point of the same run is cut from it too
    assert _page(lobby, 3) == _fresh(lobby, 3)
    assert reads == [(0, 5, PAGE)]


@pytest.mark.django_db
def test_new_messages_are_read_after_what_is_kept_with_the_page_limit(lobby, alice, reads):
    _post(lobby, alice, 3)
    _page(lobby, 0, limit=4)
    _post(lobby, alice, 3, start=4)
    assert _page(lobby, 1, limit=4) == _fresh(lobby, 1, limit=4)  # seqs 2..5
    assert reads == [(0, 3, 4), (3, 5, 4)]  # only 4 and 5 read, under the page's own limit
    assert _page(lobby, 0) == _fresh(lobby, 0)  # 1..6: 6 read
    assert reads[-1] == (5, 6, PAGE)


@pytest.mark.django_db
def test_an_edit_or_delete_after_what_is_kept_is_read_again(lobby, alice, reads):
    _post(lobby, alice, 4)
    _page(lobby, 0)
    message = Message.objects.get(room=lobby, seq=2)
    actions.edit_message(user=alice, message=message, body="two, edited")
    assert _bodies(_page(lobby, 0)) == ["m1", "two, edited", "m3", "m4"]
    assert len(reads) == 2
    actions.delete_message(user=alice, message=Message.objects.get(room=lobby, seq=3))
    assert _page(lobby, 0) == _fresh(lobby, 0)
    assert _page(lobby, 0)[2][0]["deleted_at"] is not None
    assert len(reads) == 3


@pytest.mark.django_db
def test_a_position_older_than_what_is_kept_takes_it_as_it_is(lobby, alice, reads):
    """A replay whose position predates an edit gets the edit live (it listened before reading
    its position): the page it is given may be older or newer than the edit, as a read would."""
    _post(lobby, alice, 2)
    seq, change = selectors.room_position(room_id=lobby.pk)
    _page(lobby, 0)
    actions.edit_message(user=alice, message=Message.objects.get(room=lobby, seq=1), body="e")
    assert _bodies(replaypages.messages_after(lobby.pk, MessagesAfter(0, seq, PAGE), change)) == [
        "m1",
        "m2",
    ]
    assert len(reads) == 1


@pytest.mark.django_db
def test_a_room_event_after_what_is_kept_is_read_again(lobby, alice, reads):
    _post(lobby, alice, 2)
    _page(lobby, 0)
    lobby.slug = "hall"
    lobby.save()  # room.updated: the messages' room is now "hall"
    assert {message["room"] for message, _ in _page(lobby, 0)} == {"hall"}
    assert len(reads) == 2


@pytest.mark.django_db
def test_a_resume_before_what_is_kept_is_read_and_kept_instead(lobby, alice, reads):
    _post(lobby, alice, 6)
    _page(lobby, 3)
    assert _page(lobby, 1) == _fresh(lobby, 1)
    assert _page(lobby, 2) == _fresh(lobby, 2)
    assert reads == [(3, 6, PAGE), (1, 6, PAGE)]


@pytest.mark.django_db
def test_what_is_kept_is_bounded(lobby, alice, monkeypatch, reads):
    monkeypatch.setattr(replaypages, "MAX_ROWS", 3)
    _post(lobby, alice, 3)
    _page(lobby, 0)
    _post(lobby, alice, 2, start=4)
    assert _page(lobby, 2) == _fresh(lobby, 2)  # 3..5 kept now
    assert _page(lobby, 0) == _fresh(lobby, 0)  # 1 and 2 were cut: read again
    assert len(reads) == 3
    monkeypatch.setattr(replaypages, "MAX_AGE_S", -1.0)  # every entry too old
    assert _page(lobby, 0) == _fresh(lobby, 0)
    assert len(reads) == 4


@pytest.mark.django_db
def test_rooms_kept_are_bounded(alice, monkeypatch, reads):
    monkeypatch.setattr(replaypages, "MAX_ROOMS", 2)
    rooms = [actions.create_room(creator=alice, slug=f"r{n}", title="R") for n in range(3)]
    for room in rooms:
        _post(room, alice, 1)
        _page(room, 0)
    _page(rooms[2], 0)
    _page(rooms[1], 0)
    assert len(reads) == 3
    _page(rooms[0], 0)  # the least recently used, dropped
    assert len(reads) == 4


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("disconnect_leftover_sockets")
async def test_sockets_resuming_alike_read_once_and_an_edit_between_reaches_the_next(
    lobby, alice, bob, reads
):
    """Two sockets resume from the start: the second's replay is cut from the first's read.
    Then seq 2 is edited; a third resuming from the start (as of before every message, so the
    edit replay cannot carry it) gets the edited message in its replay of new messages."""
    connecting.learn("lobby", lobby.pk)
    for n in range(3):
        await save_message(lobby, alice, f"m{n + 1}")
    replays = []
    for _ in range(2):
        sock, frame = await open_socket(bob, query=f"after_seq=0&after_change={C}")
        replays.append([frame, *await recv_until(sock, lambda f: f["type"] == "sync.done")])
        await sock.disconnect()
    assert replays[0] == replays[1]
    assert [f["message"]["body"] for f in replays[0][:-1]] == ["m1", "m2", "m3"]
    assert len(reads) == 1

    message = await database_sync_to_async(Message.objects.get)(room=lobby, seq=2)
    await database_sync_to_async(actions.edit_message)(user=alice, message=message, body="two")
    sock, frame = await open_socket(bob, query=f"after_seq=0&after_change={C}")
    frames = [frame, *await recv_until(sock, lambda f: f["type"] == "sync.done")]
    assert [(f["type"], f["message"]["body"]) for f in frames[:-1]] == [
        ("message.new", "m1"),
        ("message.new", "two"),
        ("message.new", "m3"),
    ]
    assert frames[-1] == {"type": "sync.done", "seq": 3, "change": C + 4}
    assert len(reads) == 2
    await sock.disconnect()
