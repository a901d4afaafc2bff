"""Every statement of database/sql.py, run on the database the suite runs on (CI runs the suite on
SQLite and on PostgreSQL): what it writes or reads, read back through the ORM."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import ApiToken
from accounts.tokens import create_token
from analytics.models import ConnectionSession, LatencyMinute, RoomMinute
from broker.models import ProcessedEvent
from chat import actions
from chat.models import Message, OutboxEvent, Room
from database import sql
from database.joined import joined_row, unique_row
from tests.support.rooms import C

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 26, 5, 40, tzinfo=UTC)


def _outbox(room: Room | None, n: int = 1) -> list[OutboxEvent]:
    """``n`` unpublished outbox rows of ``room`` (None: of no room), written with the ORM."""
    return [
        OutboxEvent.objects.create(
            topic="chat.room", type="room.joined", room=room, event={"n": i}, created_at=T0
        )
        for i in range(n)
    ]


# --- one row with its related row ---------------------------------------------------------------


def test_joined_row_is_what_select_related_reads(alice, django_assert_num_queries):
    token, _ = create_token(user=alice, expires_at=T0)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=T0 - timedelta(days=1))
    alice.last_login = T0
    alice.save()
    orm = ApiToken.objects.select_related("user").get(pk=token.pk)
    with django_assert_num_queries(1):  # the user comes with it
        found = joined_row(ApiToken, "user", "digest", token.digest)
        user = found.user
    for obj, expected in ((found, orm), (user, orm.user)):
        for field in type(obj)._meta.concrete_fields:
            got, want = getattr(obj, field.attname), getattr(expected, field.attname)
            assert (got, type(got)) == (want, type(want)), field.name  # aware datetimes, bools
    assert found.expires_at == T0 and user.is_active is True and not found._state.adding
    assert joined_row(ApiToken, "user", "digest", "no such digest") is None


def test_unique_row_is_what_filter_first_reads(lobby, django_assert_num_queries):
    Room.objects.filter(pk=lobby.pk).update(is_private=True)
    orm = Room.objects.filter(slug="lobby").first()
    with django_assert_num_queries(1):
        found = unique_row(Room, "slug", "lobby")
    for field in Room._meta.concrete_fields:
        got, want = getattr(found, field.attname), getattr(orm, field.attname)
        assert (got, type(got)) == (want, type(want)), field.name  # aware datetimes, bools
    assert found.is_private is True and not found._state.adding and found == orm
    assert unique_row(Room, "slug", "LOBBY") is None  # exactly as filter(slug=...) matches
    assert unique_row(Room, "slug", "no-such-room") is None


# --- bulk writes of any model -------------------------------------------------------------------
def test_insert_writes_rows_and_a_conflict_raises():
    event_id = uuid.uuid4()
    names = ("subscriber", "event_id", "topic", "stream_id", "worker", "processed_at")
    rows = [
        ("s", event_id, "chat.message", "1-0", "w", T0),
        ("t", event_id, "chat.room", "2-0", "w", T0),
    ]
    assert sql.insert(ProcessedEvent, names, rows) == 2
    stored = ProcessedEvent.objects.order_by("subscriber")
    assert [(p.subscriber, p.event_id, p.topic, p.processed_at) for p in stored] == [
        ("s", event_id, "chat.message", T0),
        ("t", event_id, "chat.room", T0),
    ]
    with pytest.raises(IntegrityError), transaction.atomic():  # unique (subscriber, event_id)
        sql.insert(ProcessedEvent, names, rows[:1])


def test_insert_chunks_past_the_parameter_limit():
    names = ("subscriber", "event_id", "topic", "stream_id", "worker", "processed_at")
    rows = [("s", uuid.uuid4(), "t", f"{i}-0", "w", T0) for i in range(1200)]
    assert sql.insert(ProcessedEvent, names, rows) == 1200
    assert ProcessedEvent.objects.count() == 1200


def test_insert_instances_sets_primary_keys_in_order(lobby, alice):
    rows = [
        OutboxEvent(
            event_id=uuid.uuid4(), topic="chat.room", type="room.left", room=lobby if i else None,
            seq=None, change=i, event={"i": i, "text": "é"}, created_at=T0,
        )
        for i in range(3)
    ]  # fmt: skip
    sql.insert_instances(rows)
    assert all(not row._state.adding for row in rows)
    stored = {row.pk: row for row in OutboxEvent.objects.all()}
    assert [(stored[r.pk].event_id, stored[r.pk].event, stored[r.pk].room_id) for r in rows] == [
        (r.event_id, r.event, r.room_id) for r in rows
    ]
    assert [r.pk for r in rows] == sorted(r.pk for r in rows)
    message = Message(room=lobby, author=alice, body="hi", seq=1, client_id=uuid.uuid4())
    sql.insert_instances([message])  # auto_now_add applied
    stored = Message.objects.get(pk=message.pk)
    assert (stored.client_id, stored.created_at) == (message.client_id, message.created_at)
    sql.insert_instances([])


def test_update_instances_writes_the_named_fields_only(lobby, alice, bob):
    a = Message.objects.create(room=lobby, author=alice, body="a")
    b = Message.objects.create(room=lobby, author=alice, body="b")
    a.body, a.edited_at, a.author, a.client_id = "a2", T0, bob, uuid.uuid4()
    b.body, b.seq = "b2", 99  # seq not named: not written
    sql.update_instances([a, b], ["body", "edited_at", "author", "client_id"])
    stored = {m.pk: m for m in Message.objects.all()}
    assert (stored[a.pk].body, stored[a.pk].edited_at, stored[a.pk].author_id) == ("a2", T0, bob.pk)
    assert stored[a.pk].client_id == a.client_id
    assert (stored[b.pk].body, stored[b.pk].seq) == ("b2", 2)


def test_insert_new_skips_rows_whose_key_is_taken_and_returns_those_written():
    names = ("session", "user", "room", "connected_at", "disconnected_at", "duration_s")
    ConnectionSession.objects.create(session="taken", user="alice", room="lobby")
    rows = [
        ("taken", "mallory", "secret", T0, T0, 0.0),
        ("s1", "bob", "lobby", T0, None, None),
        ("s2", "carol", "lobby", None, T0, 1.5),
    ]
    written = sql.insert_new(
        ConnectionSession, names, rows, unique=("session",), returning="session"
    )
    assert sorted(written) == ["s1", "s2"]
    stored = {s.session: s for s in ConnectionSession.objects.all()}
    assert (stored["taken"].user, stored["taken"].connected_at) == ("alice", None)  # untouched
    s1 = stored["s1"]
    assert (s1.user, s1.connected_at, s1.disconnected_at, s1.duration_s) == ("bob", T0, None, None)
    assert (stored["s2"].disconnected_at, stored["s2"].duration_s) == (T0, 1.5)
    # Nothing returned unless asked; a JSON column; past the parameter limit in chunks.
    minutes = [(T0 + timedelta(minutes=i), 0, 0.0, 0.0, {"1": i}) for i in range(400)]
    columns = ("minute", "count", "total_ms", "max_ms", "buckets")
    assert sql.insert_new(LatencyMinute, columns, minutes[:1], unique=("minute",)) == []
    written = sql.insert_new(LatencyMinute, columns, minutes, unique=("minute",), returning="id")
    assert len(written) == 399 and LatencyMinute.objects.count() == 400
    assert LatencyMinute.objects.get(minute=T0 + timedelta(minutes=7)).buckets == {"1": 7}


def test_rows_in_reads_instances_by_key_in_key_order():
    for i in (3, 1, 2):
        LatencyMinute.objects.create(minute=T0 + timedelta(minutes=i), count=i, buckets={"5": i})
    ConnectionSession.objects.create(session="b", user="bob", room="lobby", connected_at=T0)
    ConnectionSession.objects.create(session="a", user="alice", room="lobby", duration_s=1.5)

    sessions = sql.rows_in(ConnectionSession, "session", ["b", "zz", "a", "b"], lock=True)
    assert [(s.session, s.user, s.connected_at, s.duration_s) for s in sessions] == [
        ("a", "alice", None, 1.5),
        ("b", "bob", T0, None),
    ]
    assert sessions[0].pk == ConnectionSession.objects.get(session="a").pk
    minutes = sql.rows_in(LatencyMinute, "minute", [T0 + timedelta(minutes=i) for i in (3, 2, 9)])
    assert [(m.minute, m.count, m.buckets) for m in minutes] == [
        (T0 + timedelta(minutes=2), 2, {"5": 2}),
        (T0 + timedelta(minutes=3), 3, {"5": 3}),
    ]
    assert sql.rows_in(LatencyMinute, "minute", []) == []
    event_id = uuid.uuid4()
    names = ("subscriber", "event_id", "topic", "stream_id", "worker", "processed_at")
    sql.insert(ProcessedEvent, names, [(n, event_id, "t", "1-0", "w", T0) for n in ("s", "t")])
    ids = [event_id, uuid.uuid4()]
    ledger = sql.rows_in(ProcessedEvent, "event_id", ids, where={"subscriber": "t"})
    assert [(row.subscriber, row.event_id) for row in ledger] == [("t", event_id)]
    many = [T0 + timedelta(minutes=i) for i in range(1200)]  # past the parameter limit
    assert len(sql.rows_in(LatencyMinute, "minute", many, lock=True)) == 3


def test_upsert_add_creates_and_adds():
    other = T0 + timedelta(minutes=1)
    keys, counters = ("room", "minute"), ("messages", "joins", "leaves", "connects")
    sql.upsert_add(RoomMinute, keys, counters, {("lobby", T0): (2, 1, 0, 0)})
    sql.upsert_add(
        RoomMinute, keys, counters, {("lobby", T0): (3, 0, 0, 1), ("lobby", other): (1, 1, 0, 0)}
    )
    stored = RoomMinute.objects.order_by("minute").values_list("minute", "messages", "joins")
    assert list(stored) == [(T0, 5, 1), (other, 1, 1)]


# --- the statements of every post and connect ---------------------------------------------------
def test_allocate_takes_seqs_and_changes(lobby):
    assert sql.allocate(lobby.pk, 3, new_messages=True) == (3, C + 3)
    assert sql.allocate(lobby.pk, 2, new_messages=False) == (3, C + 5)
    assert sql.allocate(lobby.pk, 1, new_messages=True) == (4, C + 6)
    room = Room.objects.get(pk=lobby.pk)
    assert (room.last_seq, room.last_change) == (4, C + 6)
    assert sql.allocate(10**9, 1, new_messages=True) is None


def test_room_position_and_any_change_after_are_what_a_connect_reads(lobby, alice):
    assert sql.room_position(lobby.pk) == (0, C)  # the fixture's room events
    for body in ("a", "b"):
        actions.post_message(author=alice, room=lobby, body=body)
    actions.edit_message(user=alice, message=Message.objects.get(room=lobby, seq=1), body="A")
    assert sql.room_position(lobby.pk) == (2, C + 3)
    assert sql.room_position(10**9) is None
    assert sql.any_change_after(lobby.pk, 2, C + 2)  # seq 1 was edited by change C + 3
    assert sql.any_change_after(lobby.pk, 1, C + 2)
    assert not sql.any_change_after(lobby.pk, 2, C + 3)  # nothing after the newest change
    assert not sql.any_change_after(lobby.pk, 0, 0)  # no message up to seq 0


def test_room_events_after_reads_the_kept_room_events_in_change_order(lobby, mallory):
    actions.join_room(user=mallory, room=lobby)  # C + 1
    lobby.title = "The lobby"
    lobby.save()  # C + 2
    assert sql.room_events_after(lobby.pk, 0, 10) == [
        (1, "member.joined", {"member": {"user": "alice", "role": "owner"}}),
        (2, "member.joined", {"member": {"user": "bob", "role": "member"}}),
        (C + 1, "member.joined", {"member": {"user": "mallory", "role": "member"}}),
        (C + 2, "room.updated", {"slug": "lobby", "title": "The lobby", "is_private": False}),
    ]
    assert [c for c, _, _ in sql.room_events_after(lobby.pk, 1, 2)] == [2, C + 1]
    assert sql.room_events_after(lobby.pk, C + 2, 10) == []


def test_outbox_pending_ids_of_a_room_and_of_no_room(lobby, secret_room):
    OutboxEvent.objects.all().delete()  # the fixtures' room.joined rows
    mine, others, roomless = _outbox(lobby, 3), _outbox(secret_room), _outbox(None, 2)
    OutboxEvent.objects.filter(pk=mine[0].pk).update(published_at=T0)
    assert sql.outbox_pending_ids(lobby.pk, 10) == [mine[1].pk, mine[2].pk]
    assert sql.outbox_pending_ids(lobby.pk, 1) == [mine[1].pk]
    assert sql.outbox_pending_ids(secret_room.pk, 10) == [others[0].pk]
    assert sql.outbox_pending_ids(None, 10) == [r.pk for r in roomless]


def test_mark_published_sets_the_given_rows_only(lobby):
    OutboxEvent.objects.all().delete()
    rows = _outbox(lobby, 1203)  # more ids than one statement takes on SQLite
    at = timezone.now()
    sql.mark_published([r.pk for r in rows[:-1]], at)
    assert list(OutboxEvent.objects.filter(published_at=None)) == [rows[-1]]
    published = OutboxEvent.objects.exclude(published_at=None)
    assert set(published.values_list("published_at", flat=True)) == {at}


def test_oldest_pending_created_at():
    assert sql.oldest_pending_created_at() is None
    first, second = _outbox(None, 2)
    OutboxEvent.objects.filter(pk=second.pk).update(created_at=T0 - timedelta(hours=1))
    assert sql.oldest_pending_created_at() == T0  # the oldest by id, as an aware datetime
    OutboxEvent.objects.filter(pk=first.pk).update(published_at=T0)
    assert sql.oldest_pending_created_at() == T0 - timedelta(hours=1)


def test_messages_with_client_ids_matches_whole_pairs(lobby, alice, bob):
    ids = [uuid.uuid4() for _ in range(3)]
    a0 = Message.objects.create(room=lobby, author=alice, body="a0", client_id=ids[0])
    b1 = Message.objects.create(room=lobby, author=bob, body="b1", client_id=ids[1])
    Message.objects.create(room=lobby, author=bob, body="none")
    # (alice, ids[1]) and (bob, ids[0]) are no pairs of a message, though each part is.
    wanted = {(alice.pk, ids[0]), (alice.pk, ids[1]), (bob.pk, ids[0]), (bob.pk, ids[1])}
    assert sorted(sql.messages_with_client_ids(wanted)) == sorted([a0.pk, b1.pk])
    assert sql.messages_with_client_ids({(alice.pk, ids[2])}) == []
    assert sql.messages_with_client_ids(set()) == []
