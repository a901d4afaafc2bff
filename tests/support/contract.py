"""The wire checked against the documents: every REST response under /api/ against the OpenAPI
document the app serves, every WebSocket frame (both directions) and close code against
docs/asyncapi.yaml.

Strict on purpose: an object may hold only the fields its schema lists (a schema without
``additionalProperties`` is closed), a frame type or status the document does not list fails,
and so does a response header that is neither documented for that response nor one of the
generic HTTP headers below. ``check_*`` raise ``ContractError`` naming what differs.

Installed for the whole suite (tests/conftest.py): Django's test client checks each /api/
response it gets, ``tests.support.ws.Socket`` and ``tests.support.procs.RemoteSocket`` each
frame they send or receive. Frames a test builds as raw text (``send("not json")``) are sent
as they are: deliberately broken input is not the server's contract.
"""

from __future__ import annotations

import functools
import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
# Headers of HTTP itself, of the security middleware and of sessions: not part of any operation.
GENERIC_HEADERS = {
    "content-type",
    "content-length",
    "vary",
    "allow",
    "x-frame-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "x-content-type-options",
    "content-security-policy",
    "strict-transport-security",
    "cache-control",
    "expires",
    "set-cookie",
}
# A write the API refuses outside its documented operations (405) was counted all the same.
OUTSIDE_OPERATIONS_HEADERS = {
    **{
        name: {"schema": {"type": "integer", "minimum": 0}}
        for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After")
    },
    "WWW-Authenticate": {"schema": {"type": "string"}},
}
# A path of the API with a method it has no operation for: DRF authenticates and throttles
# before it looks for the method.
OUTSIDE_OPERATIONS_CODES = {
    401: {"not_authenticated", "authentication_failed"},
    405: {"method_not_allowed"},
    429: {"throttled"},
    500: {"server_error"},
}
# A path no route of the API matches (a server error: a view added by a test).
OUTSIDE_PATHS_CODES = {404: {"not_found"}, 500: {"server_error"}}
NOT_THE_API = ("/api/schema/", "/api/docs/", "/api/asyncapi.yaml")
# Transport closes any socket may see (normal, going away, abnormal, server error).
GENERIC_CLOSE_CODES = {1000, 1001, 1006, 1011}


# (channel, side, frame type) of every frame checked in this process: what the suite exercised.
SEEN: set[tuple[str, str, str]] = set()


class ContractError(AssertionError):
    """Traffic the documents do not describe."""


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if "T" not in value or not re.search(r"(Z|[+-]\d\d:\d\d)$", value):
            raise ValueError(f"not an RFC 3339 date-time with a zone: {value!r}")
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    return checker


FORMATS = _format_checker()


def _closed(schema: Any, *, nullable_keyword: bool) -> Any:
    """A copy of ``schema`` in which every object schema listing properties admits no others,
    and (OpenAPI 3.0) ``nullable: true`` is turned into JSON Schema's ``null`` type."""
    if isinstance(schema, list):
        return [_closed(s, nullable_keyword=nullable_keyword) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v, nullable_keyword=nullable_keyword) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if nullable_keyword and out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else out["type"]
        elif "allOf" in out or "$ref" in out:
            out = {"anyOf": [{"type": "null"}, {k: v for k, v in out.items()}]}
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _validate(instance: Any, schema: dict, defs: dict, where: str) -> None:
    root = {**schema, "$defs": defs}
    errors = sorted(
        jsonschema.Draft202012Validator(root, format_checker=FORMATS).iter_errors(instance),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        error = errors[0]
        path = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise ContractError(
            f"{where}: at {path}: {error.message[:300]}\n{json.dumps(instance)[:800]}"
        )


def _refs_to_defs(schema: Any, prefix: str) -> Any:
    text = json.dumps(schema).replace(f'"$ref": "{prefix}', '"$ref": "#/$defs/')
    return json.loads(text)


# --- OpenAPI -------------------------------------------------------------------------------------
@functools.cache
def openapi() -> dict:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("spectacular", "--format", "openapi-json", stdout=out)
    document = json.loads(out.getvalue())
    defs = _closed(document.get("components", {}).get("schemas", {}), nullable_keyword=True)
    document["x-defs"] = _refs_to_defs(defs, "#/components/schemas/")
    routes = []
    for template, item in document["paths"].items():
        params = {name: _param_pattern(item, name) for name in re.findall(r"\{([^}]+)\}", template)}
        pattern = re.sub(
            r"\\\{([^}]+)\\\}", lambda m, params=params: params[m[1]], re.escape(template)
        )
        routes.append((template.count("{"), re.compile(f"^{pattern}$"), template, item))
    document["x-routes"] = sorted(routes, key=lambda r: r[0])
    return document


def _param_pattern(item: dict, name: str) -> str:
    """The regex of a path parameter: what its documented schema admits."""
    for operation in item.values():
        for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
            if parameter["in"] == "path" and parameter["name"] == name:
                schema = parameter.get("schema", {})
                if schema.get("type") == "integer":
                    return "[0-9]+"
                if "pattern" in schema:
                    return f"(?:{schema['pattern'].strip('^$')})"
    return "[^/]+"


def _operation(method: str, path: str) -> tuple[str | None, dict | None]:
    for _, pattern, template, item in openapi()["x-routes"]:
        if pattern.match(path):
            return template, item.get("get" if method == "head" else method)
    return None, None


def check_response(method: str, path: str, response) -> None:
    """One REST response (a Django test client response) against the OpenAPI document."""
    if not path.startswith("/api/") or path.startswith(NOT_THE_API):
        return
    method = method.lower()
    status = response.status_code
    where = f"{method.upper()} {path} -> {status}"
    template, operation = _operation(method, path)
    body = _json(response, where)
    if template is None or operation is None:
        # Outside the documented operations, the API answers only in the error shape (info).
        expected = OUTSIDE_OPERATIONS_CODES if template else OUTSIDE_PATHS_CODES
        if body is None or body.get("code") not in expected.get(status, ()):
            raise ContractError(f"{where}: no documented operation answers this")
        _validate(body, _closed(error_schema(), nullable_keyword=True), {}, where)
        _check_headers(response, OUTSIDE_OPERATIONS_HEADERS, where)
        return
    documented = operation["responses"].get(str(status))
    if documented is None:
        raise ContractError(f"{where}: status {status} not documented for {template}")
    _check_headers(response, documented.get("headers", {}), where)
    content = documented.get("content")
    if content is None:
        if response.content and method != "head":
            raise ContractError(f"{where}: a body where none is documented")
        return
    if method == "head":
        return
    if body is None:
        raise ContractError(f"{where}: documented JSON, got {response.get('Content-Type')}")
    schema = _closed(content["application/json"]["schema"], nullable_keyword=True)
    _validate(body, _refs_to_defs(schema, "#/components/schemas/"), openapi()["x-defs"], where)


def error_schema() -> dict:
    """The error shape every answer outside the documented operations has."""
    from web.openapi import error_schema as shaped

    return shaped(["not_found", *set().union(*OUTSIDE_OPERATIONS_CODES.values())])


def _json(response, where: str) -> Any:
    if getattr(response, "streaming", False):
        return None
    if not response.get("Content-Type", "").startswith("application/json"):
        return None
    try:
        return json.loads(response.content) if response.content else None
    except ValueError as exc:
        raise ContractError(f"{where}: the JSON does not parse") from exc


def _check_headers(response, documented: dict, where: str) -> None:
    present = {name.lower(): value for name, value in response.items()}
    names = {name.lower(): name for name in documented}
    for lower, value in present.items():
        if lower in GENERIC_HEADERS:
            continue
        if lower not in names:
            raise ContractError(f"{where}: header {lower!r} is not documented")
        schema = documented[names[lower]].get("schema", {})
        if schema.get("type") == "integer":
            if not re.fullmatch(r"[0-9]+", value):
                raise ContractError(f"{where}: header {lower!r} is not an integer: {value!r}")
            value = int(value)
        _validate(value, schema, {}, f"{where}: header {lower}")
    for name, header in documented.items():
        if header.get("required") and name.lower() not in present:
            raise ContractError(f"{where}: required header {name!r} is missing")


# --- AsyncAPI ------------------------------------------------------------------------------------
@functools.cache
def asyncapi() -> dict:
    document = yaml.safe_load(ASYNCAPI.read_text())
    defs = _closed(document["components"]["schemas"], nullable_keyword=False)
    channels = {}
    for name, channel in document["channels"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(channel["address"]))
        channels[name] = {
            "pattern": re.compile(f"^{pattern}$"),
            "close": {int(c) for c in channel.get("x-close-codes", {})},
            "query": channel.get("bindings", {}).get("ws", {}).get("query"),
            "client": {},
            "server": {},
        }
    for operation in document["operations"].values():
        name = operation["channel"]["$ref"].rsplit("/", 1)[-1]
        side = "client" if operation["action"] == "receive" else "server"
        for ref in operation["messages"]:
            key = ref["$ref"].rsplit("/", 1)[-1]
            message_ref = document["channels"][name]["messages"][key]["$ref"]
            message = document["components"]["messages"][message_ref.rsplit("/", 1)[-1]]
            payload = _closed(message["payload"], nullable_keyword=False)
            frame_type = payload["properties"]["type"]["const"]
            channels[name][side][frame_type] = _refs_to_defs(payload, "#/components/schemas/")
    return {"channels": channels, "defs": _refs_to_defs(defs, "#/components/schemas/")}


def _channel(path: str) -> tuple[str, dict]:
    for name, channel in asyncapi()["channels"].items():
        if channel["pattern"].match(path):
            return name, channel
    raise ContractError(f"{path}: no documented WebSocket channel")


def check_frame(path: str, side: str, frame: Any) -> None:
    """One frame, sent by ``side`` ("client" or "server") on the socket at ``path``."""
    name, channel = _channel(path.split("?", 1)[0])
    where = f"{name} {side} frame"
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ContractError(f"{where}: not an object with a type: {str(frame)[:200]}")
    schema = channel[side].get(frame["type"])
    if schema is None:
        raise ContractError(f"{where}: type {frame['type']!r} is not documented on {name}")
    _validate(frame, schema, asyncapi()["defs"], f"{where} {frame['type']}")
    SEEN.add((name, side, frame["type"]))


def documented_frames() -> set[tuple[str, str, str]]:
    """Every (channel, side, frame type) the AsyncAPI document lists."""
    return {
        (name, side, frame_type)
        for name, channel in asyncapi()["channels"].items()
        for side in ("client", "server")
        for frame_type in channel[side]
    }


def check_close(path: str, code: int | None) -> None:
    """A close code the server sent on the socket at ``path``."""
    name, channel = _channel(path.split("?", 1)[0])
    if code is not None and code not in channel["close"] | GENERIC_CLOSE_CODES:
        raise ContractError(f"{name}: close code {code} is not documented")


def check_query(path: str, query: str) -> None:
    """The query string a test connects with: only documented parameters (their values may be
    wrong on purpose: the server answers those with 4400)."""
    name, channel = _channel(path)
    allowed = set((channel["query"] or {}).get("properties", {}))
    for pair in filter(None, query.split("&")):
        if pair.split("=", 1)[0] not in allowed:
            raise ContractError(f"{name}: query parameter {pair!r} is not documented")
