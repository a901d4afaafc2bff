"""Statements the hot write path runs for every post, without the ORM's query building.

Measured on this project's 2-core machine, building a query with the ORM cost 0.3-0.5 ms of CPU
(a ``filter()`` on Message, a ``bulk_create``, an ``update()``) while running it cost 0.03-0.1
ms. A post ran about ten of them. What is here is the same SQL, written once: values still go
through each field's own ``get_db_prep_save`` (UUIDs, datetimes, JSON), so what is stored is
exactly what the ORM would store, on PostgreSQL and on SQLite (>= 3.35, for RETURNING).
Identifiers in these statements come from model metadata, values are always parameters
(hence the ``noqa: S608`` where they are written).
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model


def insert_rows(objs: list[Model]) -> None:
    """``bulk_create(objs)`` for unsaved instances of one model with an automatic primary
    key: one INSERT (per ``bulk_batch_size``) of every other column; sets each instance's
    primary key from RETURNING, in order, and marks it saved."""
    if not objs:
        return
    # The connection itself, not django.db.connection: each attribute read through that proxy
    # is a thread-local lookup, and the loop below reads it for every value.
    connection = connections[DEFAULT_DB_ALIAS]
    meta = objs[0]._meta
    columns = [field for field in meta.concrete_fields if field is not meta.pk]
    quote = connection.ops.quote_name
    head = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in columns)}) "  # noqa: S608
        "VALUES "
    )
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    tail = f" RETURNING {quote(meta.pk.column)}"
    size = connection.ops.bulk_batch_size(columns, objs)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), size):
            chunk = objs[start : start + size]
            params = [
                field.get_db_prep_save(field.pre_save(obj, add=True), connection)
                for obj in chunk
                for field in columns
            ]
            cursor.execute(head + ", ".join([row] * len(chunk)) + tail, params)
            for obj, (pk,) in zip(chunk, cursor.fetchall(), strict=True):
                obj.pk = pk
                obj._state.adding = False
                obj._state.db = connection.alias
