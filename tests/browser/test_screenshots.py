"""The pictures in docs/screenshots/: the room, the room list and the dashboard, desktop and
phone, light and dark, from the seeded demo plus a short conversation.

``make screenshots`` runs this with PARLEY_SCREENSHOTS=docs/screenshots; in the test suite the
pictures go to test-artifacts/ and the test checks that every page fits its screen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from chat import actions
from chat.models import Membership, Room
from tests.browser.conftest import DESKTOP

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

PHONE_TALL = {"width": 390, "height": 844}
CONVERSATION = [
    ("bob", "Morning! Did the deploy go out?"),
    ("alice", "It did: **all green**. Notes are on https://example.com/release-notes"),
    ("alice", "Two things to watch:\n- the `relay` lag after restarts\n- mobile layout"),
    ("carol", "> the relay lag after restarts\n\nI'll keep an eye on it, @alice."),
    ("bob", "Thanks both 🙌"),
    ("carol", "Quick one: ```make screenshots``` makes these pictures."),
    ("bob", "@alice can you look at the dashboard when you have a minute?"),
]


def _seed():
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    users = {u.username: u for u in get_user_model().objects.all()}
    users["carol"] = get_user_model().objects.create_user("carol", password="parley-demo")
    lobby = Room.objects.get(slug="lobby")
    actions.join_room(user=users["carol"], room=lobby)
    for name, title in (("design", "Design reviews"), ("ops", "Ops on call")):
        room = actions.create_room(creator=users["alice"], slug=name, title=title)
        actions.join_room(user=users["bob"], room=room)
    actions.open_direct_room(user=users["alice"], other=users["bob"])
    for name, body in CONVERSATION:
        actions.post_message(author=users[name], room=lobby, body=body)
    actions.post_message(author=users["bob"], room=Room.objects.get(slug="ops"), body="paged: disk")
    return users


def test_screenshots(open_page, processes, artifacts):
    target = Path(os.environ.get("PARLEY_SCREENSHOTS") or artifacts)
    target.mkdir(parents=True, exist_ok=True)
    processes.worker("analytics")
    users = _seed()
    staff = get_user_model().objects.create_user("ops", password="pw-ops", is_staff=True)
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE_TALL)):
        for theme in ("light", "dark"):
            dark = theme == "dark"
            # Each picture shows alice with three unread messages (the last page read them).
            Membership.objects.filter(user=users["alice"], room__slug="lobby").update(
                last_read_seq=4
            )
            room = open_page("/rooms/lobby/", users["alice"], viewport=viewport, dark=dark)
            room.wait_for_selector("#state[data-state='live']")
            room.wait_for_selector("#messages li.first-unread")
            room.screenshot(path=target / f"room-{size}-{theme}.png")
            home = open_page("/", users["alice"], viewport=viewport, dark=dark)
            home.wait_for_selector("html[data-me='live']")
            home.screenshot(path=target / f"rooms-{size}-{theme}.png")
            dash = open_page("/analytics/dashboard/", staff, viewport=viewport, dark=dark)
            dash.wait_for_selector("#dash-state[data-state='live']")
            dash.wait_for_selector("#fig-messages:not(:has-text('0'))", timeout=20_000)
            dash.screenshot(path=target / f"dashboard-{size}-{theme}.png", full_page=True)
            for page in (room, home, dash):
                assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
            if size == "phone":
                room.click("#drawer-open")
                room.wait_for_selector("#sidebar", state="visible")
                room.screenshot(
                    path=target / f"room-list-drawer-{size}-{theme}.png", animations="disabled"
                )
