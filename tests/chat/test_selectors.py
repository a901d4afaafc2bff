"""The reads every connect makes (chat.selectors): their answers, and that the usual ones cost
one statement written once rather than an ORM query built per call."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import actions, selectors
from chat.models import Message, Room
from contract import events


def test_room_position_is_the_newest_seq_and_change(alice, lobby):
    assert selectors.room_position(room_id=lobby.pk) == (0, 0)
    actions.post_message(author=alice, room=lobby, body="one")
    actions.post_message(author=alice, room=lobby, body="two")
    actions.edit_message(user=alice, message=Message.objects.get(room=lobby, seq=1), body="1")
    assert selectors.room_position(room_id=lobby.pk) == (2, 3)
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

    assert changes(3, 3) == [(2, 4), (1, 5)]
    assert changes(1, 4) == [(1, 5)]
    with CaptureQueriesContext(connection) as queries:
        assert changes(3, 5) == [] and changes(0, 0) == []
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
    assert selectors.changes_after(room_id=lobby.pk, up_to_seq=3, after_change=3, limit=10) == [
        expected[1],
        expected[2],
    ]
