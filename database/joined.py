"""One row of a model (with its related row, or alone) by a unique column: a hand-written read.

Beside ``database/sql.py`` (every other statement written by hand, at the 400-line cap) and
under the same rules: no app of Parley imported, the statement built from the model's metadata,
values always parameters, run on the current connection; tests/database/test_sql.py runs it on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models

_JOINED: dict[tuple, tuple] = {}


def joined_row(model: type[models.Model], related: str, field: str, value: Any) -> Any:
    """``model.objects.select_related(related).filter(**{field: value}).first()`` for a unique
    ``field`` and a non-null foreign key ``related``: the instance, its related one set, or None.
    Every token-authenticated connect reads its token and user so; building that statement
    cost the ORM ~0.5 ms of CPU, running it ~0.07 ms. Written once per model and backend; the
    values are converted as the ORM converts them (its backend's and fields' converters, as
    ``RawQuerySet`` does) and the instances made with ``Model.from_db``."""
    return _read(model, related, field, value)


def unique_row(model: type[models.Model], field: str, value: Any) -> Any:
    """``model.objects.filter(**{field: value}).first()`` for a unique ``field``, read as
    ``joined_row`` reads: every connect reads its room so (the ORM built that statement in
    ~0.4 ms of CPU, more than a reconnect's whole replay read)."""
    return _read(model, None, field, value)


def _read(model: type[models.Model], related: str | None, field: str, value: Any) -> Any:
    conn = connections[DEFAULT_DB_ALIAS]
    key = (model, related, field, conn.vendor)
    if key not in _JOINED:
        _JOINED[key] = _joined_plan(model, related, field, conn)
    sql, parts = _JOINED[key]
    with conn.cursor() as cursor:
        cursor.execute(sql, [value])
        row = cursor.fetchone()
    if row is None:
        return None
    instances, start = [], 0
    for part_model, names, converters in parts:
        values = list(row[start : start + len(names)])
        for i, (funcs, col) in converters:
            for func in funcs:
                values[i] = func(values[i], col, conn)
        instances.append(part_model.from_db(conn.alias, names, values))
        start += len(names)
    if related is not None:
        setattr(instances[0], related, instances[1])
    return instances[0]


def _joined_plan(model: type[models.Model], related: str | None, field: str, conn) -> tuple:
    quote = conn.ops.quote_name
    foreign = None if related is None else model._meta.get_field(related)
    parts, columns = [], []
    tables = [("t", model)] if foreign is None else [("t", model), ("r", foreign.related_model)]
    for alias, part in tables:
        fields = part._meta.concrete_fields
        columns += [f"{alias}.{quote(f.column)}" for f in fields]
        cols = [f.get_col(part._meta.db_table) for f in fields]
        convert = [(c, conn.ops.get_db_converters(c) + c.get_db_converters(conn)) for c in cols]
        converters = [(i, (funcs, c)) for i, (c, funcs) in enumerate(convert) if funcs]
        parts.append((part, [f.attname for f in fields], converters))
    sql = f"SELECT {', '.join(columns)} FROM {quote(model._meta.db_table)} t "  # noqa: S608
    if foreign is not None:
        sql += (
            f"INNER JOIN {quote(foreign.related_model._meta.db_table)} r "
            f"ON r.{quote(foreign.target_field.column)} = t.{quote(foreign.column)} "
        )
    sql += f"WHERE t.{quote(model._meta.get_field(field).column)} = %s"
    return sql, parts
