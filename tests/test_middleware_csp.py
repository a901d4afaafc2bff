"""web.middleware's Content-Security-Policy: every page carries it, and no page has what it
forbids (an inline script or an ``on*=`` handler), which the policy would silently break."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat import actions

pytestmark = pytest.mark.django_db

PAGES = [
    "/",
    "/rooms/lobby/",
    "/rooms/secret/",
    "/mentions/",
    "/dm/bob/",
    "/account/tokens/",
    "/analytics/dashboard/",
    "/api/docs/",
    "/admin/",
    "/admin/chat/room/",
    "/accounts/login/",
    "/accounts/signup/",
]


class InlineCode(HTMLParser):
    """Collects inline scripts (a <script> with code but no src, other than JSON data) and
    event-handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._script: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.found += [f"<{tag} {name}=…>" for name in attrs if name.startswith("on")]
        if tag == "script":
            self._script = attrs

    def handle_data(self, data):
        script = self._script
        if script is not None and data.strip() and "src" not in script:
            if script.get("type") != "application/json":
                self.found.append(f"inline <script>: {data.strip()[:60]}")

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_the_policy_and_no_inline_script(path, lobby, secret_room, alice):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    actions.post_message(author=alice, room=lobby, body="hello <script>alert(1)</script>")
    client = Client()
    if not path.startswith("/accounts/"):
        client.force_login(alice)
    response = client.get(path)

    assert response.status_code == 200, (path, response.status_code)
    policy = dict(d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    parser = InlineCode()
    parser.feed(response.content.decode())
    assert parser.found == [], (path, parser.found)


def test_the_api_docs_script_is_a_file_of_this_site(db):
    alice = get_user_model().objects.create_user("docs-reader", password="pw")
    client = Client()
    client.force_login(alice)
    page = client.get("/api/docs/").content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', page)
    own = [s for s in scripts if not s.startswith("/static/")]
    assert own and all(s.startswith("/api/docs/") for s in own), scripts
    script = client.get(own[0].replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith(("application/javascript", "text/javascript"))
    assert b"SwaggerUIBundle" in script.content
