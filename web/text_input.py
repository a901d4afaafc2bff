"""Refuse text that is not text: a request whose path, query string or form fields hold a NUL
character or bytes that are not UTF-8 is answered 400 before any view runs, so nothing
downstream (PostgreSQL refuses NUL in strings; Django replaces undecodable bytes) sees it.

The answer is the API's error shape under ``/api/`` and a plain 400 page elsewhere. JSON bodies
are left to their parsers and serializers, which already refuse NUL (``invalid``); the API
answers multipart bodies 415 without reading them.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

FORM_TYPE = "application/x-www-form-urlencoded"  # what browsers send for Parley's forms
MULTIPART_TYPE = "multipart/form-data"


def _bad_encoded(raw: str | bytes) -> bool:
    """A query string or urlencoded body (``+`` for spaces) that decodes to invalid text."""
    if isinstance(raw, str):
        raw = raw.encode("latin-1", "replace")
    decoded = unquote_to_bytes(raw.replace(b"+", b" "))
    if b"\x00" in decoded:
        return True
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def invalid_text(request: HttpRequest) -> str | None:
    """What is wrong with the request's text, or None."""
    if "\x00" in request.path:
        return "the path contains a NUL character"
    if _bad_encoded(request.META.get("QUERY_STRING", "")):
        return "the query string contains a NUL character or bytes that are not UTF-8"
    if request.method != "POST":
        return None
    try:
        if request.content_type == FORM_TYPE:
            # The raw body (read once, kept for the view): parsing request.POST here would
            # leave DRF nothing to parse.
            bad = _bad_encoded(request.body)
        elif request.content_type == MULTIPART_TYPE and not _is_api(request):
            # The API refuses multipart (415) before reading it; pages read request.POST.
            bad = any("\x00" in key or "\x00" in value for key, value in request.POST.items())
        else:
            bad = False
    except RequestDataTooBig:
        return None  # refused by the view with its own answer (413 under /api/)
    if bad:
        return "a form field contains a NUL character or bytes that are not UTF-8"
    return None


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


class RejectInvalidText:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = invalid_text(request)
        if problem is None:
            return self.get_response(request)
        if _is_api(request):
            return JsonResponse({"code": "invalid_text", "detail": problem}, status=400)
        return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
