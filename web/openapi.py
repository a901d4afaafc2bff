"""The OpenAPI document says what the wire carries (drf-spectacular postprocessing hook).

Views declare the error codes their operation can answer (``web.api.error_codes``); this
hook adds the codes every operation of its kind shares (authentication, the write throttle,
request bodies), and writes, per error status, the error shape with ``code`` as an enum of
exactly those codes. It declares the response headers the API sends: ``RateLimit-Limit``,
``RateLimit-Remaining`` and ``RateLimit-Reset`` on every write, ``Retry-After`` on every 429,
``WWW-Authenticate`` on 401. ``tests/api/test_contract.py`` checks real traffic against it.
"""

from __future__ import annotations

from typing import Any

from rest_framework import status

UNSAFE = {"post", "put", "patch", "delete"}
OPERATION_METHODS = UNSAFE | {"get", "head", "options", "trace"}

# Codes DRF itself answers with (web.api.exception_handler keeps them), by status.
DRF_STATUS_OF = {
    "invalid": status.HTTP_400_BAD_REQUEST,
    "parse_error": status.HTTP_400_BAD_REQUEST,
    "invalid_text": status.HTTP_400_BAD_REQUEST,  # web.text_input, before any view
    "authentication_failed": status.HTTP_401_UNAUTHORIZED,
    "permission_denied": status.HTTP_403_FORBIDDEN,
    "token_cannot_manage_tokens": status.HTTP_403_FORBIDDEN,
    "request_too_large": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    "unsupported_media_type": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    "throttled": status.HTTP_429_TOO_MANY_REQUESTS,
}
# invalid_text: a NUL or non-UTF-8 text in the path, query string or a form (web.text_input).
EVERY_OPERATION = {"not_authenticated", "authentication_failed", "invalid_text"}
# Writes: the per-user write throttle, and CSRF for session clients (permission_denied).
EVERY_WRITE = {"throttled", "permission_denied"}
# Operations with a JSON request body.
EVERY_BODY = {"invalid", "parse_error", "request_too_large", "unsupported_media_type"}

RATE_HEADERS = {
    "RateLimit-Limit": "Requests allowed per window by the limit this request counted against "
    "(a message post: the message limit or the write limit, whichever has fewer left).",
    "RateLimit-Remaining": "Requests left in the current window.",
    "RateLimit-Reset": "Seconds until the window, and the count, start over.",
}
ERROR_DESCRIPTIONS = {
    400: "Invalid request; nothing changed.",
    401: "No credentials, or a bad, revoked or expired token.",
    403: "Not allowed.",
    404: "Not found (a private room you are not in is not found either).",
    409: "Conflict; nothing changed.",
    413: "Too large.",
    415: "Not JSON.",
    429: "Rate limited: wait Retry-After seconds.",
}


def status_of(code: str) -> int:
    """The HTTP status an error ``code`` is answered with (the exception handler's table)."""
    from web.api import STATUS_OF  # imports DRF: not at module load (settings read this)

    return DRF_STATUS_OF.get(code) or STATUS_OF.get(code, status.HTTP_400_BAD_REQUEST)


def _integer_header(description: str, *, required: bool = False) -> dict[str, Any]:
    return {
        "description": description,
        "required": required,
        "schema": {"type": "integer", "minimum": 0},
    }


def error_schema(codes: list[str]) -> dict[str, Any]:
    """The error shape with ``code`` limited to ``codes``."""
    return {
        "type": "object",
        "required": ["code", "detail"],
        "properties": {
            "code": {"type": "string", "enum": sorted(codes)},
            "detail": {"type": "string", "description": "For people; may change."},
            "fields": {
                "type": "object",
                "description": "invalid: the message(s) of each field that was not valid.",
                "additionalProperties": {"type": "array", "items": {}},
            },
        },
    }


def _document_operation(method: str, operation: dict[str, Any]) -> None:
    from web.api import ERROR_CODES_KEY  # imports DRF: not at module load

    codes = set(operation.pop(ERROR_CODES_KEY, [])) | EVERY_OPERATION
    if method in UNSAFE:
        codes |= EVERY_WRITE
    if "requestBody" in operation:
        codes |= EVERY_BODY
    responses = operation["responses"]
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(status_of(code), []).append(code)
    for http_status, group in sorted(by_status.items()):
        responses[str(http_status)] = {
            "description": ERROR_DESCRIPTIONS.get(http_status, "Refused."),
            "content": {"application/json": {"schema": error_schema(group)}},
        }
    for http_status, response in responses.items():
        headers = response.setdefault("headers", {})
        if method in UNSAFE:
            headers.update({name: _integer_header(text) for name, text in RATE_HEADERS.items()})
        if http_status == "429":
            headers["Retry-After"] = _integer_header("Seconds to wait.", required=True)
        if http_status == "401":
            headers["WWW-Authenticate"] = {
                "description": "Bearer (token) authentication.",
                "schema": {"type": "string"},
            }
        if not headers:
            del response["headers"]


def postprocess(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """SPECTACULAR_SETTINGS POSTPROCESSING_HOOKS: error codes and headers of each operation."""
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method in OPERATION_METHODS:
                _document_operation(method, operation)
    result.get("components", {}).get("schemas", {}).pop("Error", None)
    return result
