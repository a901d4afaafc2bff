"""Every SQL statement Parley writes by hand (the rest of the code uses the ORM).

Why by hand: on the paths that run for every post and every subscriber batch, building a
statement with the ORM cost more CPU than the database spent running it (0.3-0.5 ms against
0.03-0.1 ms; bulk_update's CASE about 2 ms a row). Two kinds live here:

- bulk writes and reads of any model (``insert``, ``insert_new``, ``insert_instances``,
  ``update_instances``, ``upsert_add``, ``rows_in``): built from the model's metadata, values
  prepared with the backend's own adapters, one statement per chunk of rows;
- the statements every post runs (``allocate``, ``outbox_pending_ids``, ``mark_published``,
  ``messages_with_client_ids``), every connect (``room_position``, ``any_change_after``,
  ``room_events_after``) and
  the readiness probe (``oldest_pending_created_at``), written out once on the tables and
  columns chat's migrations create.

This module imports no app of Parley: ``chat``, ``broker`` and ``analytics`` all sit above it.
Each statement runs on the current connection, so inside the caller's transaction; values are
always parameters (only quoted metadata and placeholders are put in a statement's text). The SQL
is what SQLite (>= 3.35: RETURNING) and PostgreSQL both accept; tests/database/test_sql.py runs
every statement on both.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

# --- bulk writes of any model -------------------------------------------------------------------


def _adapter(field: models.Field) -> Callable[[Any], Any]:
    """How a Python value of ``field`` becomes a query parameter on this connection."""
    if isinstance(field, models.UUIDField):
        if connection.features.has_native_uuid_field:
            return lambda v: v
        return lambda v: None if v is None else v.hex
    if isinstance(field, models.DateTimeField):
        return _same_value_once(connection.ops.adapt_datetimefield_value)
    if isinstance(field, models.CharField | models.TextField | models.IntegerField):
        return lambda v: v
    if isinstance(field, models.FloatField):
        return lambda v: v
    return lambda v: field.get_db_prep_save(v, connection)


def _same_value_once(adapt: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``adapt``, its answer reused for the same object (a batch's rows share a datetime)."""
    last: list = [object(), None]

    def adapted(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, adapt(value)
        return last[1]

    return adapted


def _columns(model: type[models.Model], names: Sequence[str]) -> list[models.Field]:
    return [model._meta.get_field(name) for name in names]


def _chunks(rows: Sequence[Any], width: int) -> Iterable[Sequence[Any]]:
    # SQLite's declared limit is 999 parameters; PostgreSQL's protocol allows 65,535.
    limit = connection.features.max_query_params or 65_535
    size = max(1, min(500, limit // max(1, width)))
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _values(model: type[models.Model], fields: list[models.Field], count: int) -> str:
    quote = connection.ops.quote_name
    cols = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    values = ", ".join([row] * count)
    return f"INSERT INTO {quote(model._meta.db_table)} ({cols}) VALUES {values}"  # noqa: S608


def insert(model: type[models.Model], names: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """INSERT the rows (tuples of Python values in ``names`` order); a conflict raises.

    Returns how many rows were written. Defaults and ``auto_now_add`` are not applied: give every
    column that has no database default.
    """
    rows = list(rows)
    _insert(model, _columns(model, names), rows)
    return len(rows)


def insert_instances(objs: list[models.Model]) -> None:
    """``bulk_create(objs)`` for unsaved instances of one model with an automatic primary key,
    without the ORM's statement building. Writes every other column (``pre_save`` applies
    ``auto_now_add``), sets each primary key from RETURNING, in order, and marks the instances
    saved (Django's ``_state``, as ``bulk_create`` does). Sends no signals."""
    if not objs:
        return
    meta = objs[0]._meta
    fields = [field for field in meta.concrete_fields if field is not meta.pk]
    rows = [tuple(field.pre_save(obj, add=True) for field in fields) for obj in objs]
    pks = _insert(type(objs[0]), fields, rows, returning=True)
    for obj, pk in zip(objs, pks, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias


def insert_new(
    model: type[models.Model],
    names: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    unique: Sequence[str],
    returning: str | None = None,
) -> list:
    """INSERT the rows (Python values in ``names`` order) whose ``unique`` columns (a unique
    constraint's, each key once in ``rows``) match no row: ``ON CONFLICT (unique) DO NOTHING``,
    a statement per chunk. Returns the ``returning`` column of the rows written, as the
    database gives it: a row missing was there already (PostgreSQL waits for a conflicting
    uncommitted insert's transaction to end)."""
    quote = connection.ops.quote_name
    conflict = ", ".join(quote(f.column) for f in _columns(model, unique))
    tail = f" ON CONFLICT ({conflict}) DO NOTHING"
    if returning:
        tail += f" RETURNING {quote(model._meta.get_field(returning).column)}"
    return _insert(model, _columns(model, names), list(rows), tail=tail, returning=bool(returning))


def _insert(
    model: type[models.Model],
    fields: list[models.Field],
    rows: Sequence[Sequence[Any]],
    *,
    tail: str = "",
    returning: bool = False,
) -> list:
    """INSERT the rows (Python values in ``fields`` order), a statement per chunk, ``tail``
    after each; the values of the one column ``tail`` returns, in row order, when
    ``returning`` (the new primary keys by default)."""
    adapters = [_adapter(f) for f in fields]
    prepared = [tuple(a(v) for a, v in zip(adapters, row, strict=True)) for row in rows]
    if returning and not tail:
        tail = f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    values: list = []
    with connection.cursor() as cursor:
        for chunk in _chunks(prepared, len(fields)):
            cursor.execute(_values(model, fields, len(chunk)) + tail, [v for r in chunk for v in r])
            if returning:
                values.extend(value for (value,) in cursor.fetchall())
    return values


def update_instances(objs: list[models.Model], names: Sequence[str]) -> None:
    """``bulk_update(objs, names)`` for saved instances of one model, without the ORM's CASE
    expressions: one UPDATE by primary key, written once and run for every instance
    (executemany). Building bulk_update's CASE cost about 2 ms of CPU per row (a departed
    user's 10,000 messages took 24 s)."""
    if not objs:
        return
    meta = objs[0]._meta
    fields = _columns(type(objs[0]), names)
    adapters = [_adapter(f) for f in (*fields, meta.pk)]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    rows = [
        tuple(
            adapt(value)
            for adapt, value in zip(
                adapters, (*(getattr(obj, f.attname) for f in fields), obj.pk), strict=True
            )
        )
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def rows_in(
    model: type[models.Model],
    key: str,
    values: Iterable[Any],
    *,
    where: dict[str, Any] | None = None,
    lock: bool = False,
) -> list[models.Model]:
    """The instances of ``model`` whose ``key`` is in ``values`` and whose fields equal
    ``where``'s, in ``key`` order (``raw()``: the backend's converters apply; a ``key__in``
    filter cost ~13 us of CPU per value); ``lock``: ``FOR UPDATE`` where there is one
    (PostgreSQL; SQLite has one writer), in key order so that lockers never wait in a circle."""
    field = model._meta.get_field(key)
    adapt = _adapter(field)
    ordered = sorted(set(values))
    if not ordered:
        return []
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in model._meta.concrete_fields)
    equal = [(model._meta.get_field(name), value) for name, value in (where or {}).items()]
    head = f"SELECT {columns} FROM {quote(model._meta.db_table)} WHERE "  # noqa: S608
    head += "".join(f"{quote(f.column)} = %s AND " for f, _ in equal) + quote(field.column) + " IN"
    fixed = [_adapter(f)(value) for f, value in equal]
    tail = f" ORDER BY {quote(field.column)}"
    if lock and connection.features.has_select_for_update:
        tail += " FOR UPDATE"
    rows: list[models.Model] = []
    for chunk in _chunks(ordered, 1):
        params = [*fixed, *(adapt(v) for v in chunk)]
        statement = f"{head} ({', '.join(['%s'] * len(chunk))}){tail}"
        rows.extend(model.objects.raw(statement, params))
    return rows


def upsert_add(
    model: type[models.Model],
    keys: Sequence[str],
    counters: Sequence[str],
    rows: dict[tuple, Sequence[int]],
) -> None:
    """Add ``rows`` (key tuple -> counter increments) to the counters of the rows with those
    keys, creating missing rows: one ``INSERT ... ON CONFLICT (keys) DO UPDATE SET c = c +
    excluded.c`` a chunk. ``keys`` must be covered by a unique constraint, and every key appears
    once (it is a dict), as both databases require of one statement."""
    if not rows:
        return
    quote = connection.ops.quote_name
    key_fields, counter_fields = _columns(model, keys), _columns(model, counters)
    fields = key_fields + counter_fields
    adapters = [_adapter(f) for f in fields]
    table = quote(model._meta.db_table)
    conflict = ", ".join(quote(f.column) for f in key_fields)
    update = ", ".join(
        f"{quote(f.column)} = {table}.{quote(f.column)} + excluded.{quote(f.column)}"
        for f in counter_fields
    )
    prepared = [
        tuple(a(v) for a, v in zip(adapters, (*key, *incs), strict=True))
        for key, incs in rows.items()
    ]
    with connection.cursor() as cursor:
        for chunk in _chunks(prepared, len(fields)):
            statement = _values(model, fields, len(chunk))
            sql = f"{statement} ON CONFLICT ({conflict}) DO UPDATE SET {update}"
            cursor.execute(sql, [v for r in chunk for v in r])


# --- the statements of every post (chat's tables) -----------------------------------------------

_ALLOCATE_MESSAGES = (
    "UPDATE chat_room SET last_change = last_change + %s, last_seq = last_seq + %s "
    "WHERE id = %s RETURNING last_seq, last_change"
)
_ALLOCATE_CHANGES = (
    "UPDATE chat_room SET last_change = last_change + %s WHERE id = %s "
    "RETURNING last_seq, last_change"
)


def allocate(room_id: int, count: int, *, new_messages: bool) -> tuple[int, int] | None:
    """Add ``count`` to a room's ``last_change`` (and to its ``last_seq`` for new messages);
    the room's (last_seq, last_change) after it, None if there is no such room. The UPDATE
    holds the room's row lock until the transaction ends (see chat.models.Room.allocate)."""
    with connection.cursor() as cursor:
        if new_messages:
            cursor.execute(_ALLOCATE_MESSAGES, [count, count, room_id])
        else:
            cursor.execute(_ALLOCATE_CHANGES, [count, room_id])
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1])


def room_position(room_id: int) -> tuple[int, int] | None:
    """A room's (last_seq, last_change), None if there is no such room: every connect and every
    catch-up reads it (built by the ORM, ~0.3 ms of CPU)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_seq, last_change FROM chat_room WHERE id = %s", [room_id])
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1])


_ANY_CHANGE_AFTER = (
    "SELECT 1 FROM chat_message WHERE room_id = %s AND seq <= %s AND change > %s LIMIT 1"
)


def any_change_after(room_id: int, up_to_seq: int, after_change: int) -> bool:
    """Whether a message of the room with seq <= ``up_to_seq`` changed after ``after_change``
    (by the unique index on (room, change)): a connect's edits replay asks, and the answer is
    nearly always no."""
    with connection.cursor() as cursor:
        cursor.execute(_ANY_CHANGE_AFTER, [room_id, up_to_seq, after_change])
        return cursor.fetchone() is not None


_ROOM_EVENTS_AFTER = (
    "SELECT change, type, data FROM chat_roomevent WHERE room_id = %s AND change > %s "
    "ORDER BY change LIMIT %s"
)


def room_events_after(room_id: int, after_change: int, limit: int) -> list[tuple[int, str, dict]]:
    """(change, frame type, fields) of up to ``limit`` room events (chat.models.RoomEvent) after
    ``after_change``, in change order, by the unique index on (room, change): every connect's
    edit replay asks, and the answer is nearly always none."""
    with connection.cursor() as cursor:
        cursor.execute(_ROOM_EVENTS_AFTER, [room_id, after_change, limit])
        rows = cursor.fetchall()
    # JSON comes back as text (SQLite; Django's PostgreSQL backend too) or parsed.
    return [(c, t, d if isinstance(d, dict) else json.loads(d)) for c, t, d in rows]


_PENDING_OF_ROOM = (
    "SELECT id FROM chat_outboxevent WHERE room_id = %s AND published_at IS NULL "
    "ORDER BY id LIMIT %s"
)
_PENDING_OF_NO_ROOM = (
    "SELECT id FROM chat_outboxevent WHERE room_id IS NULL AND published_at IS NULL "
    "ORDER BY id LIMIT %s"
)


def outbox_pending_ids(room_id: int | None, limit: int) -> list[int]:
    """The ids of the oldest ``limit`` unpublished outbox rows of a room (of no room: None),
    read by the partial index ``outbox_pending_by_room``."""
    with connection.cursor() as cursor:
        if room_id is None:
            cursor.execute(_PENDING_OF_NO_ROOM, [limit])
        else:
            cursor.execute(_PENDING_OF_ROOM, [room_id, limit])
        return [pk for (pk,) in cursor.fetchall()]


def mark_published(ids: Sequence[int], at: datetime) -> None:
    """Set ``published_at`` of those outbox rows ``ids`` that are still pending.

    Flushers of one room run at once (every post's and every connect's after-commit flush, the
    relay's sweep) and mark overlapping rows. PostgreSQL locks the rows in id order and skips
    those another flusher holds (``FOR UPDATE SKIP LOCKED``: that one is marking them): two
    plain ``UPDATE ... WHERE id IN (...)`` locking the same rows in different orders (an index
    scan, a bitmap scan) deadlocked in the connect storm. SQLite runs one writer at a time."""
    stamp = connection.ops.adapt_datetimefield_value(at)
    locking = connection.features.has_select_for_update_skip_locked
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(ids), 1):
            placeholders = ", ".join(["%s"] * len(chunk))
            pending = f"id IN ({placeholders}) AND published_at IS NULL"
            if locking:
                pending = (
                    f"id IN (SELECT id FROM chat_outboxevent WHERE {pending} "  # noqa: S608
                    "ORDER BY id FOR UPDATE SKIP LOCKED)"
                )
            cursor.execute(
                f"UPDATE chat_outboxevent SET published_at = %s WHERE {pending}",  # noqa: S608
                [stamp, *chunk],
            )


_OLDEST_PENDING = (
    "SELECT created_at FROM chat_outboxevent WHERE published_at IS NULL ORDER BY id LIMIT 1"
)


def oldest_pending_created_at() -> datetime | None:
    """``created_at`` of the oldest unpublished outbox row (one row read by the partial index
    ``outbox_pending``); None when nothing is pending."""
    with connection.cursor() as cursor:
        cursor.execute(_OLDEST_PENDING)
        row = cursor.fetchone()
    if row is None:
        return None
    created = row[0]
    if isinstance(created, str):
        created = parse_datetime(created)
    # SQLite gives the time Django stored there, UTC, without its zone.
    return created.replace(tzinfo=UTC) if timezone.is_naive(created) else created


def messages_with_client_ids(pairs: set[tuple[int, uuid.UUID]]) -> list[int]:
    """The ids of the messages whose (author_id, client_id) is one of ``pairs``."""
    if not pairs:
        return []
    conn = connections[DEFAULT_DB_ALIAS]  # not the thread-local proxy: read once, not per value
    native = conn.features.has_native_uuid_field
    stored = {(author, client_id if native else client_id.hex) for author, client_id in pairs}
    authors = sorted({author for author, _ in stored})
    client_ids = sorted({client_id for _, client_id in stored}, key=str)
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT id, author_id, client_id FROM chat_message WHERE author_id IN "  # noqa: S608
            f"({', '.join(['%s'] * len(authors))}) AND client_id IN "
            f"({', '.join(['%s'] * len(client_ids))})",
            [*authors, *client_ids],
        )
        return [pk for pk, author, client_id in cursor.fetchall() if (author, client_id) in stored]
