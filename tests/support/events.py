"""Reading published events back from Redis and checking them against the schema."""

from __future__ import annotations

import json
import typing
import uuid

from contract import events
from infra.redis_client import get_redis


def published_events(topic: str = events.TOPIC_MESSAGE) -> list[events.Event]:
    """Every event on the topic's stream, oldest first, each validated."""
    entries = get_redis().xrange(events.stream_key(topic))
    out = []
    for _, fields in entries:
        event = json.loads(fields[b"event"])
        assert fields[b"id"].decode() == event["id"]
        assert fields[b"type"].decode() == event["type"]
        check_event(event)
        out.append(event)
    return out


def check_event(event: dict) -> None:
    """Assert ``event`` matches contract.events.Event (and its payload type) exactly."""
    _check_typed_dict(event, events.Event)
    uuid.UUID(event["id"])
    assert event["payload"]["version"] == events.SCHEMA_VERSION
    _check_typed_dict(event["payload"], events.PAYLOADS[event["type"]])
    if event["type"] in events.MESSAGE_EVENTS:
        assert event["payload"]["message"]["seq"] == event["seq"]
        assert event["payload"]["message"]["room"] == event["room"]


def _check_typed_dict(value: dict, schema: type) -> None:
    hints = typing.get_type_hints(schema)
    assert set(value) == set(hints), f"{schema.__name__}: keys {sorted(value)} != {sorted(hints)}"
    for key, hint in hints.items():
        if typing.is_typeddict(hint):
            _check_typed_dict(value[key], hint)
            continue
        allowed = typing.get_args(hint) or (hint,)
        allowed = tuple(typing.get_origin(a) or a for a in allowed)
        allowed = tuple(type(None) if a is None else a for a in allowed)
        if typing.Any in allowed:
            continue
        assert isinstance(value[key], allowed), f"{schema.__name__}.{key}: {value[key]!r}"
