"""Accessibility of the app's pages, checked by axe-core (vendored in axe-playwright-python) in
Chromium: WCAG 2 A/AA rules, colour contrast included, in both themes, desktop and phone."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from chat import actions
from chat.models import Membership
from tests.browser.conftest import DESKTOP, PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def _violations(page) -> list[str]:
    results = Axe().run(page, options=WCAG_AA)
    return [
        f"{v['id']}: {[n['target'] for n in v['nodes']][:5]}"
        for v in results.response["violations"]
    ]


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_pages_pass_axe(open_page, lobby, alice, bob, dark, viewport):
    actions.open_direct_room(user=alice, other=bob)
    for n in range(6):
        author = bob if n % 3 else alice
        actions.post_message(author=author, room=lobby, body=f"line {n} @alice https://example.com")
    Membership.objects.filter(user=alice, room=lobby).update(last_read_seq=3)
    room = open_page("/rooms/lobby/", alice, viewport=viewport, dark=dark)
    room.wait_for_selector("#state[data-state='live']")
    room.wait_for_selector("#messages li[data-seq='6']")
    assert _violations(room) == []
    for path in ("/", "/mentions/"):
        page = open_page(path, alice, viewport=viewport, dark=dark)
        page.wait_for_selector("html[data-me='live']")
        assert _violations(page) == [], path
