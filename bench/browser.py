"""The harness' HTTP client for the setup steps (sign-ups, tokens, rooms): keeps cookies, sends
the CSRF token, never goes through a proxy. Stdlib only."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class Browser:
    """A cookie-keeping HTTP client for the setup steps (never through a proxy)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar)
        )

    def cookie(self, name: str) -> str:
        return next((c.value for c in self.jar if c.name == name), "")

    def request(
        self, method: str, path: str, data: Any = None, token: str | None = None, form=False
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        body = None
        if form:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif data is not None:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif method != "GET":
            headers["X-CSRFToken"] = self.cookie("csrftoken")
        url = self.base + path  # always http://127.0.0.1:<port>/...
        req = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
        try:
            with self.opener.open(req, timeout=60) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")[:300]


def expect(status: int, body: Any, ok: tuple[int, ...], what: str) -> Any:
    if status not in ok:
        raise RuntimeError(f"{what}: HTTP {status} {str(body)[:300]}")
    return body
