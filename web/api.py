"""What every REST endpoint shares: one error shape, and a per-user limit on writes.

Errors are always ``{"code": "<stable_code>", "detail": "<text>"}`` (validation errors add
``"fields": {"<field>": ["<message>", ...]}``) with the matching status code.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from chat import ratelimit
from chat.errors import Refused
from web.middleware import QUOTAS_ATTRIBUTE

# Where an operation's own error codes travel to the schema (web/openapi.py reads them).
ERROR_CODES_KEY = "x-error-codes"

# The status of each refusal code of the actions (chat.actions.ActionError); others are 400.
STATUS_OF = {
    "not_authenticated": status.HTTP_401_UNAUTHORIZED,
    "forbidden": status.HTTP_403_FORBIDDEN,
    "not_a_member": status.HTTP_403_FORBIDDEN,
    "not_found": status.HTTP_404_NOT_FOUND,
    "no_such_user": status.HTTP_404_NOT_FOUND,
    "client_id_reused": status.HTTP_409_CONFLICT,
    "idempotency_key_reused": status.HTTP_409_CONFLICT,
    "already_exists": status.HTTP_409_CONFLICT,
    "message_deleted": status.HTTP_409_CONFLICT,
    "body_too_long": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    "rate_limited": status.HTTP_429_TOO_MANY_REQUESTS,
}


def error(code: str, detail: str, http_status: int, **extra) -> Response:
    return Response({"code": code, "detail": detail, **extra}, status=http_status)


def exception_handler(exc, context) -> Response | None:
    if isinstance(exc, Refused):
        response = error(exc.code, exc.detail, STATUS_OF.get(exc.code, 400))
        if "retry_after" in exc.extra:
            response["Retry-After"] = str(exc.extra["retry_after"])
        return response
    if isinstance(exc, RequestDataTooBig):
        return error("request_too_large", "the request body is too large", 413)
    if isinstance(exc, Http404):
        return error("not_found", "not found", 404)
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return error("invalid", "the request is not valid", 400, fields=fields)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response.data = {
            "code": exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code,
            "detail": detail,
        }
    return response


class WriteThrottle(BaseThrottle):
    """Per-user limit on unsafe requests (all processes; Redis, fail-open). Notes where the
    user stands (``note_quota``) for the RateLimit-* headers."""

    WINDOW = 60

    def allow_request(self, request, view) -> bool:
        self.retry_after = self.WINDOW
        if request.method in ("GET", "HEAD", "OPTIONS") or not request.user.is_authenticated:
            return True
        allowed, quota = ratelimit.take(
            "api-write",
            request.user.pk,
            limit=settings.PARLEY["API_WRITES_PER_MINUTE"],
            window=self.WINDOW,
        )
        note_quota(request, quota)
        if quota is not None:
            self.retry_after = quota.reset
        return allowed

    def wait(self) -> float:
        return float(self.retry_after)


def note_quota(request, quota: ratelimit.Quota | None) -> None:
    """Record a limit this request counted against; the response's RateLimit-* headers
    describe the closest to refusing (``web.middleware.RateLimitHeadersMiddleware``)."""
    if quota is not None:
        django_request = getattr(request, "_request", request)
        quotas = getattr(django_request, QUOTAS_ATTRIBUTE, [])
        setattr(django_request, QUOTAS_ATTRIBUTE, [*quotas, quota])


def error_codes(*codes: str) -> dict[str, list[str]]:
    """``extend_schema(extensions=...)`` of an operation: the error codes it can answer beyond
    those every operation of its kind shares (web/openapi.py adds those, and writes each
    error status with its codes as an enum)."""
    return {ERROR_CODES_KEY: sorted(codes)}
