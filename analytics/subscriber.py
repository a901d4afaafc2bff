"""The analytics subscriber's handler (registered in settings.PARLEY_SUBSCRIBERS)."""

from __future__ import annotations

from analytics import aggregates, dashboard
from contract.events import Event


def handle(batch: list[Event]) -> None:
    """Store each event as a behaviour record and fold it into the aggregates.

    Runs inside the broker's transaction, with the ledger that makes it exactly-once.
    """
    aggregates.apply(batch)
    dashboard.push_after_commit()
