"""Middleware of every HTTP response: the Content-Security-Policy, and the API's error shape for
every error under ``/api/``. Neither imports DRF (DRF's settings import web.api while
middleware loads).

Content-Security-Policy (Django 5.2 has none built in): scripts come only from this site's own
files: no inline ``<script>``, no ``on*=`` handlers, no ``eval``; a page's data travels in
``json_script`` blocks, which are data, not code. Styles may be inline (the admin and the API
docs use style attributes); nothing is loaded from another host. The policy is
``settings.PARLEY_CSP``; a view that set its own header keeps it.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.locale import LocaleMiddleware
from django.utils.deprecation import MiddlewareMixin

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Sync and async capable (MiddlewareMixin): adds no thread hop under ASGI."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        policy = settings.PARLEY_CSP
        if policy and HEADER not in response:
            response[HEADER] = policy
        return response


# Codes of the error statuses that can reach a client without passing DRF's exception handler.
CODE_OF_STATUS = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "server_error",
}


class ApiErrorShapeMiddleware(MiddlewareMixin):
    """Every error under ``/api/`` in the API's shape, whoever made it: DRF's views answer in
    it already, but a path no route matches (``/api/rooms//messages/0/``, a slug with other
    characters), a method a plain Django view refuses, a request Django itself rejects, or a
    server error were answered with Django's HTML page — its debug page when DEBUG is on.

    First in MIDDLEWARE, so it sees every response, including those Django built from an
    exception; the exception is still logged as usual (the debug page is not shown for /api/).
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if (
            response.status_code < 400
            or not request.path.startswith("/api/")
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        status_code = response.status_code
        code = CODE_OF_STATUS.get(status_code, "error")
        detail = "no such endpoint" if status_code == 404 else response.reason_phrase.lower()
        shaped = JsonResponse({"code": code, "detail": detail}, status=status_code)
        # The other headers stay (Allow, Retry-After, WWW-Authenticate, and the security
        # headers inner middleware set); only those describing the old body go.
        for header, value in response.items():
            if header.lower() not in _BODY_HEADERS:
                shaped[header] = value
        shaped.cookies = response.cookies
        return shaped


QUOTAS_ATTRIBUTE = "parley_quotas"  # set on the request by web.api.note_quota


class RateLimitHeadersMiddleware(MiddlewareMixin):
    """``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds) on every
    response to a request that counted against a per-user limit (REST writes; a message post
    counts against two: the headers describe the one with the fewest requests left), and
    ``Retry-After`` on a 429 that has none. Requests that count against nothing (reads) get
    none of them."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        quotas = getattr(request, QUOTAS_ATTRIBUTE, None)
        if not quotas:
            return response
        quota = min(quotas, key=lambda q: (q.remaining, -q.reset))
        response["RateLimit-Limit"] = str(quota.limit)
        response["RateLimit-Remaining"] = str(quota.remaining)
        response["RateLimit-Reset"] = str(quota.reset)
        if response.status_code == 429 and "Retry-After" not in response:
            response["Retry-After"] = str(quota.reset)
        return response


_BODY_HEADERS = {"content-type", "content-length", "content-encoding", "content-disposition"}


class PageLocaleMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware for the pages only: a page is in the browser's language
    (Accept-Language, one of LANGUAGES), with ``Content-Language`` and ``Vary: Accept-Language``.
    The API (``/api/``) stays in English, its documented headers unchanged: its messages are
    for programs, and its clients choose no language."""

    def process_request(self, request: HttpRequest) -> None:
        if not request.path.startswith("/api/"):
            super().process_request(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if request.path.startswith("/api/"):
            return response
        return super().process_response(request, response)
