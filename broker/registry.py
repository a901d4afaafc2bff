"""Subscribers, as registered in settings.PARLEY_SUBSCRIBERS (name -> handler and topics).

Adding a subscriber is a module with a handler plus a settings entry; the producer is untouched::

    PARLEY_SUBSCRIBERS = {
        "analytics": {
            "handler": "analytics.subscriber.handle",   # handle(events: list[Event]) -> None
            "topics": ["chat.message", "chat.room", "chat.presence"],
            "start": "oldest",                            # or "now"; see below
        },
    }

A handler receives a batch of events (oldest first) inside the database transaction that also
records them in the ledger: it must keep its effects in that database, and raise to refuse.

``start`` decides where a *new* subscriber's consumer group begins: ``"oldest"`` (the default)
replays every event still retained on its topics, ``"now"`` only sees events published after the
group is created. An existing group always resumes where it left off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.utils.module_loading import import_string

from contract.events import Event

Handler = Callable[[list[Event]], None]


@dataclass(frozen=True)
class Subscriber:
    name: str
    handler_path: str
    topics: tuple[str, ...]
    start: Literal["oldest", "now"] = "oldest"
    max_attempts: int = 5

    @property
    def group(self) -> str:
        """The consumer group on each topic stream."""
        return self.name

    def handler(self) -> Handler:
        return import_string(self.handler_path)


def subscribers() -> dict[str, Subscriber]:
    out = {}
    for name, spec in settings.PARLEY_SUBSCRIBERS.items():
        start = spec.get("start", "oldest")
        if start not in ("oldest", "now"):
            raise ValueError(f"subscriber {name}: start must be 'oldest' or 'now', not {start!r}")
        out[name] = Subscriber(
            name=name,
            handler_path=spec["handler"],
            topics=tuple(spec["topics"]),
            start=start,
            max_attempts=spec.get("max_attempts", settings.PARLEY_BROKER["MAX_ATTEMPTS"]),
        )
    return out


def get(name: str) -> Subscriber:
    try:
        return subscribers()[name]
    except KeyError:
        known = ", ".join(sorted(settings.PARLEY_SUBSCRIBERS)) or "none"
        raise LookupError(f"no subscriber {name!r} (registered: {known})") from None
