"""Subscribers that exist only in the test settings (config/settings/test.py).

They prove a subscriber can be added without touching the producer, and give the tests levers:
failing on purpose, and being slow enough to be killed mid-batch. Levers are environment
variables, because the handlers run in real worker processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from analytics import subscriber as analytics
from contract.events import MESSAGE_CREATED, Event


def record(batch: list[Event]) -> None:
    """Accept everything; the broker's ledger is the record. PARLEY_TEST_SLOW_MS slows it."""
    _slow(batch)


def refuse_poison(batch: list[Event]) -> None:
    """Fail on any message whose body contains "poison" (unless PARLEY_TEST_ACCEPT_POISON)."""
    if os.environ.get("PARLEY_TEST_ACCEPT_POISON"):
        return
    for event in batch:
        if event["type"] == MESSAGE_CREATED and "poison" in event["payload"]["message"]["body"]:
            raise ValueError(f"refusing poison in event {event['id']}")


def slow_analytics(batch: list[Event]) -> None:
    """Analytics' own handler, after marking the batch as started and sleeping per event."""
    marker = os.environ.get("PARLEY_TEST_BATCH_MARKER")
    if marker:
        Path(marker).write_text(str(len(batch)))
    _slow(batch)
    analytics.handle(batch)


def _slow(batch: list[Event]) -> None:
    delay = float(os.environ.get("PARLEY_TEST_SLOW_MS", "0")) / 1000
    if delay:
        time.sleep(delay * len(batch))
