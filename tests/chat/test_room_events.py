"""Room events on room sockets (issue 16 §4): members joining and leaving (and being removed),
the room renamed or made private, pushed live in change order among the messages and covered
by resume; recorded once, whatever path made the change (chat.room_events).

In-process sockets through the real router, the real Redis layer and the database; the events
read back from the real streams; analytics' handler run as its worker runs it.
"""

from __future__ import annotations

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import Sum
from django.test import Client

from analytics.models import RoomMinute
from chat import actions
from chat.models import Membership, Message, Room, RoomEvent
from contract import events
from tests.support.events import published_events
from tests.support.inproc_worker import drain
from tests.support.rooms import C
from tests.support.ws import Socket, open_socket

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest_asyncio.fixture
async def _close_connections(disconnect_leftover_sockets):
    yield
    await database_sync_to_async(connections.close_all)()


def _rename(room: Room, title: str, *, private: bool | None = None) -> None:
    """As a shell or the admin does: the room's own save()."""
    room = Room.objects.get(pk=room.pk)
    room.title = title
    if private is not None:
        room.is_private = private
    room.save()


def _room_life(lobby, alice, mallory) -> list[tuple[str, int]]:
    """Messages and room events interleaved; returns (what, change) in the order made."""
    made = []

    def post(body: str) -> None:
        message = actions.post_message(author=alice, room=lobby, body=body).message
        made.append((f"message.new {body}", message.change))

    def room_event(kind: str) -> None:
        made.append((kind, Room.objects.get(pk=lobby.pk).last_change))

    post("one")
    actions.join_room(user=mallory, room=lobby)
    room_event("member.joined")
    post("two")
    _rename(lobby, "The lobby")
    room_event("room.updated")
    post("three")
    actions.remove_member(remover=alice, room=lobby, username="mallory")
    room_event("member.left")
    post("four")
    return made


async def _frames(sock: Socket, count: int) -> list[dict]:
    return [await sock.recv() for _ in range(count)]


@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_connections")
async def test_a_socket_sees_room_events_live_in_change_order_between_messages(
    lobby, alice, bob, mallory
):
    sock, hello = await open_socket(bob)
    assert hello == {"type": "sync.done", "seq": 0, "change": C}
    made = await database_sync_to_async(_room_life)(lobby, alice, mallory)

    frames = await _frames(sock, len(made))
    assert [f["change"] for f in frames] == list(range(C + 1, C + 1 + len(made)))
    assert all("replay" not in f for f in frames)
    shown = [
        f"{f['type']} {f['message']['body']}" if f["type"] == "message.new" else f["type"]
        for f in frames
    ]
    assert list(zip(shown, [f["change"] for f in frames], strict=True)) == made
    joined, updated, left = (f for f in frames if not f["type"].startswith("message."))
    assert joined["member"] == {"user": "mallory", "role": "member"}
    assert (updated["slug"], updated["title"], updated["is_private"]) == (
        "lobby",
        "The lobby",
        False,
    )
    assert (left["member"], left["reason"]) == ({"user": "mallory"}, "removed")
    assert await sock.nothing_pending()
    await sock.disconnect()


@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_connections")
async def test_a_resume_gets_exactly_the_missed_room_events_once_in_change_order(
    lobby, alice, bob, mallory
):
    """bob was at (0, C): he missed 4 messages and 3 room events. The replay: the 4 messages in
    seq order without change, then the 3 room events in change order with theirs (no message
    before his position was changed), then sync.done; nothing more."""
    made = await database_sync_to_async(_room_life)(lobby, alice, mallory)
    sock, frame = await open_socket(bob, query=f"after_seq=0&after_change={C}")
    frames = [frame, *await _frames(sock, 6)]
    assert [f["type"] for f in frames[:4]] == ["message.new"] * 4
    assert [f["message"]["seq"] for f in frames[:4]] == [1, 2, 3, 4]
    room_events = frames[4:]
    expected = [(kind, change) for kind, change in made if not kind.startswith("message.")]
    assert [(f["type"], f["change"]) for f in room_events] == expected
    assert all(f["replay"] is True for f in frames)
    done = await sock.recv()
    assert done == {"type": "sync.done", "seq": 4, "change": C + len(made)}
    assert await sock.nothing_pending()
    await sock.disconnect()

    # Dropped right after the last room event, the rule resumes from its change: the room
    # events are not sent again (seq 4, created after that change, comes as it now is).
    last = room_events[-1]["change"]
    sock, frame = await open_socket(bob, query=f"after_seq=4&after_change={last}")
    again = [frame]
    while again[-1]["type"] != "sync.done":
        again.append(await sock.recv())
    assert [(f["type"], f.get("change")) for f in again] == [
        ("message.edited", C + len(made)),
        ("sync.done", C + len(made)),
    ]
    await sock.disconnect()


@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_connections")
async def test_a_member_leaving_a_public_room_keeps_reading_and_sees_it(lobby, alice, bob):
    """Access holds on a public room: bob's own socket stays open and gets his member.left (as
    a catch-up after the access re-check), then the room's messages as before."""
    sock, _ = await open_socket(bob)
    await database_sync_to_async(actions.leave_room)(user=bob, room=lobby)
    left = await sock.next(lambda f: f["type"] == "member.left")
    assert (left["member"], left["reason"], left["change"]) == ({"user": "bob"}, "left", C + 1)
    await database_sync_to_async(actions.post_message)(author=alice, room=lobby, body="still")
    new = await sock.next(lambda f: f["type"] == "message.new")
    assert (new["message"]["body"], new["change"]) == ("still", C + 2)
    await sock.disconnect()


@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_connections")
async def test_a_room_made_private_tells_its_members_and_closes_the_others(
    lobby, alice, bob, mallory
):
    outsider, _ = await open_socket(mallory)
    member, _ = await open_socket(bob)
    await database_sync_to_async(_rename)(lobby, "Lobby", private=True)
    assert await outsider.close_code() == 4403
    frame = await member.next(lambda f: f["type"] == "room.updated")
    assert (frame["is_private"], frame["title"], frame["change"]) == (True, "Lobby", C + 1)
    await outsider.disconnect()
    await member.disconnect()


# --- recorded once, whatever the path ----------------------------------------------------------
def _room_events_of(topic_type: str) -> list[events.Event]:
    return [e for e in published_events(events.TOPIC_ROOM) if e["type"] == topic_type]


def test_a_membership_deleted_in_the_admin_or_a_shell_is_a_removal(lobby, alice, bob, mallory):
    actions.join_room(user=mallory, room=lobby)
    admin = get_user_model().objects.create_superuser("root", password="pw-root")
    client = Client()
    client.force_login(admin)
    membership = Membership.objects.get(room=lobby, user=mallory)
    # The room's page in the admin with its membership inline marked for deletion.
    url = f"/admin/chat/room/{lobby.pk}/change/"
    memberships = list(Membership.objects.filter(room=lobby).order_by("pk"))
    form = {
        "slug": "lobby",
        "title": "Lobby",
        "memberships-TOTAL_FORMS": str(len(memberships)),
        "memberships-INITIAL_FORMS": str(len(memberships)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for i, m in enumerate(memberships):
        form |= {
            f"memberships-{i}-id": str(m.pk),
            f"memberships-{i}-room": str(lobby.pk),
            f"memberships-{i}-user": str(m.user_id),
            f"memberships-{i}-role": m.role,
            f"memberships-{i}-last_read_seq": str(m.last_read_seq),
        }
        if m.pk == membership.pk:
            form[f"memberships-{i}-DELETE"] = "on"
    assert client.post(url, form).status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    Membership.objects.get(room=lobby, user=bob).delete()  # a shell

    left = _room_events_of(events.ROOM_LEFT)
    assert [(e["payload"]["user"], e["payload"]["reason"]) for e in left] == [
        ("mallory", "removed"),
        ("bob", "removed"),
    ]
    assert not _room_events_of(events.ROOM_UPDATED)  # the admin saved the room unchanged
    kept = RoomEvent.objects.filter(room=lobby).order_by("change")
    assert [(e.change, e.type) for e in kept][-2:] == [
        (C + 2, "member.left"),
        (C + 3, "member.left"),
    ]


def test_analytics_counts_each_join_and_leave_once(lobby, alice, bob, mallory):
    """Every path that ends a membership records its room.left once (the membership's
    post_delete), and the analytics subscriber counts what was recorded."""
    actions.join_room(user=mallory, room=lobby)
    actions.leave_room(user=mallory, room=lobby)
    actions.join_room(user=mallory, room=lobby)
    actions.remove_member(remover=alice, room=lobby, username="mallory")
    actions.join_room(user=mallory, room=lobby)
    Membership.objects.get(room=lobby, user=mallory).delete()
    actions.leave_room(user=mallory, room=lobby)  # not a member: nothing

    joined, left = _room_events_of(events.ROOM_JOINED), _room_events_of(events.ROOM_LEFT)
    assert len(joined) == 2 + 3 and len(left) == 3  # the fixture's two joins, and mallory's
    assert [e["payload"]["reason"] for e in left] == ["left", "removed", "removed"]
    changes = [e["payload"]["change"] for e in joined + left]
    assert sorted(changes) == list(range(1, C + 7)) and len(set(changes)) == len(changes)
    drain("analytics")
    totals = RoomMinute.objects.filter(room="lobby").aggregate(Sum("joins"), Sum("leaves"))
    assert (totals["joins__sum"], totals["leaves__sum"]) == (5, 3)
    assert not Message.objects.exists()
