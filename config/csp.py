"""Content-Security-Policy on every HTTP response (Django 5.2 has none built in).

Scripts come only from this site's own files: no inline ``<script>``, no ``on*=`` handlers, no
``eval``; a page's data travels in ``json_script`` blocks, which are data, not code. Styles may
be inline (the admin and the API docs use style attributes); nothing is loaded from another
host. The policy is ``settings.PARLEY_CSP``; a view that set its own header keeps it.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Sync and async capable (MiddlewareMixin): adds no thread hop under ASGI."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        policy = settings.PARLEY_CSP
        if policy and HEADER not in response:
            response[HEADER] = policy
        return response
