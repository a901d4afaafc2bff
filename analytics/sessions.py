"""Connection sessions (``ConnectionSession``) from a batch's user.connected and
user.disconnected events, in a number of statements that does not grow with the batch.

A session's row is made by whichever of its events comes first and completed by the other, in
this batch or a later one: ``connected_at``, ``disconnected_at`` and, once both are known,
``duration_s``. The broker's ledger applies each event once (broker/processing.py); an event
applied again anyway sets the same time again. A connect storm's batch used to cost a
get_or_create and a save per event (~1.7 ms of the worker's CPU per connect).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from analytics.models import ConnectionSession
from contract import events
from database import sql

_TIMES = ("connected_at", "disconnected_at", "duration_s")
_COLUMNS = ("session", "user", "room", *_TIMES)


class Seen(NamedTuple):
    """One user.connected / user.disconnected of the batch, as analytics keeps it."""

    session: str
    type: str
    user: str  # as shown (analytics.erasure)
    room: str
    at: datetime


def apply(seen: list[Seen]) -> None:
    """Fold the events (in batch order) into their sessions' rows, inside the caller's
    transaction: one SELECT of the sessions named (their rows locked, in key order, on
    PostgreSQL), one INSERT of the new ones, one UPDATE (a statement run for each changed row),
    a statement per 500 sessions. A session another worker inserted meanwhile costs one more
    SELECT."""
    if not seen:
        return
    rows = _locked({s.session for s in seen})
    times = {
        key: [row.connected_at, row.disconnected_at, row.duration_s] for key, row in rows.items()
    }
    fresh: dict[str, tuple[str, str]] = {}  # new session -> (user, room) of its first event
    for s in seen:
        if s.session not in rows and s.session not in fresh:
            fresh[s.session] = (s.user, s.room)
    new = {key: [None, None, None] for key in fresh}
    _fold([s for s in seen if s.session in fresh], new)
    written = set(
        sql.insert_new(
            ConnectionSession,
            _COLUMNS,
            [(key, *fresh[key], *new[key]) for key in fresh],
            unique=("session",),
            returning="session",
        )
    )
    lost = {key for key in fresh if key not in written}
    if lost:  # another worker's transaction wrote them first (and has committed)
        again = _locked(lost)
        rows.update(again)
        times.update(
            (k, [r.connected_at, r.disconnected_at, r.duration_s]) for k, r in again.items()
        )
    before = {key: tuple(value) for key, value in times.items()}
    _fold([s for s in seen if s.session in rows], times)
    changed = []
    for key, row in rows.items():
        if tuple(times[key]) != before[key]:
            row.connected_at, row.disconnected_at, row.duration_s = times[key]
            changed.append(row)
    sql.update_instances(changed, _TIMES)


def _locked(keys: Iterable[str]) -> dict[str, ConnectionSession]:
    """The rows of those sessions, locked until the transaction ends (sql.rows_in)."""
    return {row.session: row for row in sql.rows_in(ConnectionSession, "session", keys, lock=True)}


def _fold(seen: Iterable[Seen], times: dict[str, list]) -> None:
    """Set each event's time on its session's [connected_at, disconnected_at, duration_s]."""
    for s in seen:
        session = times[s.session]
        session[0 if s.type == events.USER_CONNECTED else 1] = s.at
        if session[0] and session[1]:
            session[2] = (session[1] - session[0]).total_seconds()
