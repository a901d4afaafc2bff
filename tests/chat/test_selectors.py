"""The reads every connect makes (chat.selectors): their answers, and that the usual ones cost
one statement written once rather than an ORM query built per call."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import actions, selectors
from chat.models import Message, Room
from contract import events
from tests.support.rooms import C


def test_room_position_is_the_newest_seq_and_change(alice, lobby):
    assert selectors.room_position(room_id=lobby.pk) == (0, C)  # the fixture's room events
    actions.post_message(author=alice, room=lobby, body="one")
    actions.post_message(author=alice, room=lobby, body="two")
    actions.edit_message(user=alice, message=Message.objects.get(room=lobby, seq=1), body="1")
    assert selectors.room_position(room_id=lobby.pk) == (2, C + 3)
    with pytest.raises(Room.DoesNotExist):
        selectors.room_position(room_id=lobby.pk + 1000)


def test_changes_after_finds_edits_and_deletes_and_answers_none_with_one_probe(alice, lobby):
    for body in ("a", "b", "c"):
        actions.post_message(author=alice, room=lobby, body=body)
    actions.edit_message(user=alice, message=Message.objects.get(room=lobby, seq=2), body="B")
    actions.delete_message(user=alice, message=Message.objects.get(room=lobby, seq=1))

    def changes(up_to_seq: int, after_change: int) -> list[tuple[int, int]]:
        found = selectors.changes_after(
            room_id=lobby.pk, up_to_seq=up_to_seq, after_change=after_change, limit=10
        )
        return [(m["seq"], change) for m, change in found]

    assert changes(3, C + 3) == [(2, C + 4), (1, C + 5)]
    assert changes(1, C + 4) == [(1, C + 5)]
    with CaptureQueriesContext(connection) as queries:
        assert changes(3, C + 5) == [] and changes(0, 0) == []
    assert len(queries) == 2 and all("LIMIT 1" in q["sql"] for q in queries)


def test_replayed_messages_are_shaped_as_message_data_shapes_them(alice, lobby):
    for body in ("a", "b", "c"):
        actions.post_message(author=alice, room=lobby, body=body)
    actions.edit_message(user=alice, message=Message.objects.get(room=lobby, seq=2), body="B")
    actions.delete_message(user=alice, message=Message.objects.get(room=lobby, seq=3))
    stored = Message.objects.filter(room=lobby).select_related("room", "author").order_by("seq")
    expected = [(events.message_data(m), m.change) for m in stored]
    assert selectors.messages_after(room_id=lobby.pk, after_seq=0, limit=10) == expected
    assert (
        selectors.messages_after(room_id=lobby.pk, after_seq=1, up_to_seq=2, limit=10)
        == (expected[1:2])
    )
    assert selectors.changes_after(room_id=lobby.pk, up_to_seq=3, after_change=C + 3, limit=10) == [
        expected[1],
        expected[2],
    ]


def test_the_edit_replay_merges_room_events_in_change_order_a_page_at_a_time(alice, mallory, lobby):
    """The room's events (chat.room_events) come among the edits and deletes, by change; a page
    is the first ``limit`` of both, and the next starts after its last change."""
    for body in ("a", "b"):
        actions.post_message(author=alice, room=lobby, body=body)  # C + 1, C + 2
    actions.join_room(user=mallory, room=lobby)  # C + 3
    actions.edit_message(user=alice, message=Message.objects.get(room=lobby, seq=1), body="A")
    lobby.title = "The lobby"
    lobby.save()  # C + 5
    actions.delete_message(user=alice, message=Message.objects.get(room=lobby, seq=2))
    actions.leave_room(user=mallory, room=lobby)  # C + 7

    def page(after_change: int, limit: int) -> list[tuple[str, int]]:
        rows = selectors.replay_changes_after(
            room_id=lobby.pk, up_to_seq=2, after_change=after_change, limit=limit
        )
        return [(row.get("frame") or f"seq {row['seq']}", change) for row, change in rows]

    everything = [
        ("member.joined", C + 3),
        ("seq 1", C + 4),
        ("room.updated", C + 5),
        ("seq 2", C + 6),
        ("member.left", C + 7),
    ]
    assert page(C + 2, 10) == everything
    assert page(0, 10) == [("member.joined", 1), ("member.joined", 2), *everything]
    pages, cursor = [], C + 2
    while True:  # as chat.delivery.CatchUp pages through it
        got = page(cursor, 2)
        pages.append(got)
        if len(got) < 2:
            break
        cursor = got[-1][1]
    assert [row for p in pages for row in p] == everything and len(pages) == 3
    with CaptureQueriesContext(connection) as queries:  # a current client: two statements
        assert page(C + 7, 10) == []
    assert len(queries) == 2 and all("LIMIT" in q["sql"] for q in queries)
