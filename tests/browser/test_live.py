"""What people see change live, in real Chromium against real server processes."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from chat import actions
from chat.models import Message

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def _room(open_page, user, slug="lobby"):
    page = open_page(f"/rooms/{slug}/", user)
    page.wait_for_selector("#state[data-state='live']")
    return page


def test_a_message_sent_by_a_is_seen_by_b_within_a_second(open_page, lobby, alice, bob):
    page_a, page_b = _room(open_page, alice), _room(open_page, bob)
    page_a.fill("#body", "hello bob")
    started = time.monotonic()
    page_a.press("#body", "Enter")
    page_b.wait_for_selector("#messages li[data-seq='1']", timeout=1000)
    assert time.monotonic() - started < 1.0
    assert page_b.inner_text("#messages li[data-seq='1'] .body") == "hello bob"


def test_typing_and_presence_appear_for_the_other_user(open_page, lobby, alice, bob):
    page_b = _room(open_page, bob)
    # Locator assertions, not wait_for_function: its string predicate is an eval, which the
    # pages' Content-Security-Policy (script-src 'self') refuses.
    expect(page_b.locator("#online-list")).to_have_text("bob")
    page_a = _room(open_page, alice)
    expect(page_b.locator("#online-list")).to_have_text("alice, bob")
    page_b.wait_for_selector(
        "#member-list li.is-online[data-username='alice']", state="attached"
    )  # the member list is folded away by default

    page_a.type("#body", "hi")
    page_b.wait_for_selector("#typing:has-text('alice is typing')")
    assert page_a.inner_text("#typing") == ""  # nobody is told about their own typing

    page_a.close()
    expect(page_b.locator("#online-list")).to_have_text("bob")


def test_unread_counts_on_the_room_list_update_live(open_page, lobby, alice, bob):
    home = open_page("/", bob)
    badge = ".room-row[data-slug='lobby'] .badge.unread"
    home.wait_for_selector("html[data-me='live']")
    assert home.is_hidden(badge)
    actions.post_message(author=alice, room=lobby, body="one")
    home.wait_for_selector(f"{badge}:has-text('1')")
    Message.objects.create(room=lobby, author=alice, body="two")
    home.wait_for_selector(f"{badge}:has-text('2')")
    assert home.is_visible(badge)


def test_a_count_read_before_a_message_never_hides_its_activity(open_page, lobby, alice, bob):
    """The (re)connect read of /api/rooms/ and an activity frame race: here the read is taken
    before the message is posted and delivered after its activity frame. The count stays 1."""
    home = open_page("/", bob)
    home.wait_for_selector("html[data-counts-read='1']")
    held = []
    home.route("**/api/rooms/", lambda route: held.append((route, route.fetch())))
    home.reload()
    home.wait_for_selector("html[data-me='live']")
    while not held:  # the handler runs while Playwright is pumping events
        home.wait_for_timeout(20)
    badge = ".room-row[data-slug='lobby'] .badge.unread"
    actions.post_message(author=alice, room=lobby, body="one")
    home.wait_for_selector(f"{badge}:has-text('1')")
    route, stale = held[0]
    assert [r["unread"] for r in stale.json() if r["slug"] == "lobby"] == [0]
    route.fulfill(response=stale)
    home.wait_for_selector("html[data-counts-read='1']")
    assert home.inner_text(badge) == "1"
    assert home.is_visible(badge)


def test_dashboard_figures_change_live(open_page, processes, lobby, alice, artifacts):
    processes.worker("analytics")
    staff = get_user_model().objects.create_user("ops", password="pw-ops", is_staff=True)
    page = open_page("/analytics/dashboard/", staff)
    page.wait_for_selector("#dash-state[data-state='live']")
    assert page.inner_text("#fig-messages") == "0"

    for body in ("a", "b", "c"):
        actions.post_message(author=alice, room=lobby, body=body)

    page.wait_for_selector("#fig-messages:has-text('3')", timeout=10_000)
    assert page.inner_text("#fig-active_users") == "1"
    assert "lobby" in page.inner_html("#chart-rooms")
    page.set_viewport_size({"width": 1100, "height": 900})
    page.screenshot(path=artifacts / "dashboard.png", full_page=True)


def test_pages_load_nothing_from_other_hosts(open_page, server, lobby, alice):
    """No CDN or external URL at run time: every request of every page goes to this server;
    and nothing a page does breaks its Content-Security-Policy (Chromium reports each violation
    on the console)."""
    staff = get_user_model().objects.create_user("ops2", password="pw-ops", is_staff=True)
    base = f"http://127.0.0.1:{server.port}/"
    elsewhere, violations = [], []
    for path, user in (
        ("/", alice),
        ("/rooms/lobby/", alice),
        ("/mentions/", alice),
        ("/account/tokens/", alice),
        ("/analytics/dashboard/", staff),
        ("/api/docs/", alice),
        ("/accounts/login/", None),
    ):
        page = open_page(path, user)
        page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith((base, "ws://127.0.0.1")) or r.url.startswith("data:")
                else elsewhere.append(r.url)
            ),
        )
        page.on(
            "console",
            lambda m, path=path: (
                violations.append((path, m.text)) if "Content Security Policy" in m.text else None
            ),
        )
        page.reload(wait_until="networkidle")
    assert elsewhere == []
    assert violations == []


def test_a_member_joining_and_a_new_title_show_live(
    open_page, lobby, alice, bob, mallory, artifacts
):
    """Room events on the room socket: mallory joins (with the page's Join button) and shows in
    alice's member list, with her count; the room renamed in a shell retitles the page; mallory
    leaving takes her off the list again."""
    page = _room(open_page, alice)
    members = page.locator("#member-list li[data-username]")
    expect(members).to_have_count(2)
    page_m = _room(open_page, mallory)
    page_m.click("#join-form button")
    expect(page.locator("#member-list li[data-username='mallory']")).to_have_count(1)
    expect(page.locator("#member-list li[data-username='mallory'] .member-name")).to_have_text(
        "mallory"
    )
    expect(page.locator("#member-count")).to_have_text("3 members")
    # alice owns the room: the new entry has the same buttons as the server-made ones.
    expect(page.locator("#member-list li[data-username='mallory'] .remove-member")).to_have_count(1)

    lobby.title = "The big lobby"
    lobby.save()
    expect(page.locator(".room-title")).to_have_text("The big lobby")
    expect(page).to_have_title("The big lobby · Parley")
    page.click("#members summary")
    page.screenshot(path=artifacts / "room-member-joined-live.png")

    actions.leave_room(user=mallory, room=lobby)
    expect(page.locator("#member-list li[data-username='mallory']")).to_have_count(0)
    expect(page.locator("#member-count")).to_have_text("2 members")
