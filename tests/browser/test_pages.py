"""The chat pages in a real headless Chromium against a real daphne process, phone-sized."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from chat import actions
from chat.models import Membership, Message
from tests.support.procs import Daphne, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

PHONE = {"width": 390, "height": 700}


def _open_room(open_page, user, slug="lobby"):
    page = open_page(f"/rooms/{slug}/", user)
    page.wait_for_selector("#state[data-state='live']")
    return page


def _seqs(page) -> list[int]:
    return page.eval_on_selector_all("#messages li", "els => els.map(e => Number(e.dataset.seq))")


def _wait_for_seq(page, seq: int, extra: str = "") -> None:
    page.wait_for_selector(f"#messages li[data-seq='{seq}']{extra}", timeout=10_000)


def _fits_without_horizontal_scroll(page) -> bool:
    return page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def test_sign_up_through_the_form(open_page):
    page = open_page("/accounts/login/")
    page.click("text=Create an account")
    page.fill("#id_username", "carol")
    page.fill("#id_password1", "a-Long-pass-123")
    page.fill("#id_password2", "a-Long-pass-123")
    page.click("button:has-text('Create account')")
    page.wait_for_selector("#rooms-heading")

    assert page.url.endswith("/")
    assert page.inner_text(".who") == "carol"
    assert get_user_model().objects.get(username="carol").check_password("a-Long-pass-123")


def test_create_a_room_and_post_in_it(open_page, alice):
    page = open_page("/", alice)
    page.fill("#id_slug", "garden")
    page.fill("#id_title", "The Garden")
    page.click("button:has-text('Create room')")
    page.wait_for_selector("#state[data-state='live']")
    assert page.url.endswith("/rooms/garden/")
    assert page.inner_text("h1") == "The Garden"

    page.fill("#body", "first post in the garden")
    page.press("#body", "Enter")
    _wait_for_seq(page, 1, "[data-status='sent']")

    assert page.inner_text("#messages li[data-seq='1'] .author") == "alice"
    assert page.inner_text("#messages li[data-seq='1'] .body") == "first post in the garden"
    assert Message.objects.get().body == "first post in the garden"
    assert page.query_selector_all("#outbox li") == []
    # The page marks the room read up to the newest message it shows.
    wait_until(
        lambda: Membership.objects.get(user=alice, room__slug="garden").last_read_seq == 1,
        timeout=10,
        what="the room marked read",
    )


def test_older_history_loads_on_scroll_up_in_order(open_page, lobby, alice, bob):
    for n in range(1, 121):
        Message.objects.create(room=lobby, author=alice, body=f"message {n}")
    # All read: the room opens at the newest (a room with unread messages opens at the first).
    Membership.objects.filter(user=bob, room=lobby).update(last_read_seq=120)
    page = _open_room(open_page, bob)
    _wait_for_seq(page, 120)
    assert _seqs(page) == list(range(71, 121))  # the newest 50, through the socket

    offset = (
        "el => el.getBoundingClientRect().top - el.closest('#scroller').getBoundingClientRect().top"
    )
    page.eval_on_selector("#scroller", "el => { el.scrollTop = 0; }")
    top_before = page.eval_on_selector("#messages li[data-seq='71']", offset)
    _wait_for_seq(page, 21)
    page.wait_for_selector("#older[data-state='idle']")
    assert _seqs(page) == list(range(21, 121))
    # The reader's place is kept: message 71 has not moved on the screen.
    assert abs(page.eval_on_selector("#messages li[data-seq='71']", offset) - top_before) < 2

    page.eval_on_selector("#scroller", "el => { el.scrollTop = 0; }")
    _wait_for_seq(page, 1)
    page.wait_for_selector("#older[data-state='end']")
    assert _seqs(page) == list(range(1, 121))
    assert page.inner_text("#messages li[data-seq='1'] .body") == "message 1"

    # At the beginning, scrolling up again fetches nothing more.
    page.eval_on_selector("#scroller", "el => { el.scrollTop = 0; }")
    page.wait_for_selector("#older[data-state='end']")
    assert _seqs(page) == list(range(1, 121))


def test_own_message_is_pending_until_acknowledged(open_page, lobby, alice):
    page = _open_room(open_page, alice)
    # Record every state the page gives the message, from the moment it appears.
    page.evaluate(
        """() => {
        window.statuses = [];
        const seen = (el) => el.dataset && el.dataset.clientId &&
            window.statuses.push([el.dataset.clientId, el.dataset.status, el.parentNode.id]);
        new MutationObserver((records) => {
            for (const r of records) {
                if (r.type === "attributes") seen(r.target);
                else r.addedNodes.forEach(seen);
            }
        }).observe(document.getElementById("scroller"),
            { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
    }"""
    )
    page.fill("#body", "are you there?")
    page.press("#body", "Enter")
    _wait_for_seq(page, 1, "[data-status='sent']")

    statuses = page.evaluate("window.statuses")
    client_id = statuses[0][0]
    assert statuses[0] == [client_id, "pending", "outbox"]
    assert statuses[-1] == [client_id, "sent", "messages"]
    assert {s[0] for s in statuses} == {client_id}
    assert Message.objects.get().client_id.hex == client_id.replace("-", "")
    assert page.query_selector_all("#outbox li") == []
    assert _seqs(page) == [1]


def test_offline_banner_and_a_post_that_waits_for_the_server(
    open_page, server, lobby, alice, artifacts
):
    page = _open_room(open_page, alice)
    assert page.is_hidden("#banner")

    server.stop(sig_kill=True)  # the server dies under the page
    page.wait_for_selector("#banner", state="visible")
    assert "Reconnecting" in page.inner_text("#banner")
    page.fill("#body", "written while offline")
    page.press("#body", "Enter")
    page.wait_for_selector("#outbox li[data-status='pending']")
    page.screenshot(path=artifacts / "page-room-offline.png")

    restarted = Daphne(server.log_path.parent, name="daphne-2", port=server.port).start()
    try:
        page.wait_for_selector("#banner", state="hidden", timeout=20_000)
        page.wait_for_selector("#state[data-state='live']")
        _wait_for_seq(page, 1, "[data-status='sent']")
        assert page.inner_text("#messages li[data-seq='1'] .body") == "written while offline"
        assert page.query_selector_all("#outbox li") == []
        assert Message.objects.get().body == "written while offline"
    finally:
        restarted.stop()


def test_mentions_of_the_viewer_are_highlighted(open_page, lobby, alice, bob):
    page = _open_room(open_page, bob)
    for body in ["hi @bob!", "hi @bobby", "mail bob@example.com", "@alice and @bob."]:
        actions.post_message(author=alice, room=lobby, body=body)
    _wait_for_seq(page, 4)

    highlighted = page.eval_on_selector_all(
        "#messages li", "els => els.map(e => e.classList.contains('mention'))"
    )
    assert highlighted == [True, False, False, True]
    # Alice sees no highlight: none of these mention her except the last one.
    page_alice = _open_room(open_page, alice)
    _wait_for_seq(page_alice, 4)
    assert page_alice.eval_on_selector_all(
        "#messages li", "els => els.map(e => e.classList.contains('mention'))"
    ) == [False, False, False, True]


def test_pages_fit_a_phone_screen(open_page, lobby, alice, bob, artifacts):
    actions.create_room(
        creator=alice, slug="a-rather-long-room-address-for-a-phone", title="Long " * 20
    )
    actions.open_direct_room(user=alice, other=bob)
    actions.post_message(author=bob, room=lobby, body="hello @alice, look: " + "x" * 300)
    actions.post_message(author=bob, room=lobby, body="https://example.com/" + "path/" * 60)
    for n in range(30):
        actions.post_message(author=alice if n % 3 else bob, room=lobby, body=f"line {n}")

    home = open_page("/", alice)
    home.wait_for_selector("#rooms-heading")
    assert _fits_without_horizontal_scroll(home)
    home.screenshot(path=artifacts / "page-home.png", full_page=True)

    room = _open_room(open_page, alice)
    _wait_for_seq(room, 32)
    actions.post_message(author=bob, room=lobby, body="@alice what do you think?")
    room.fill("#body", "Looks good to me")
    room.press("#body", "Enter")
    _wait_for_seq(room, 34, "[data-status='sent']")
    room.wait_for_selector("#messages li.mention[data-seq='33']")
    room.fill("#body", "a draft")
    assert _fits_without_horizontal_scroll(room)
    # The message list scrolls inside the page; the send box stays on the screen.
    box = room.eval_on_selector("#send", "el => el.getBoundingClientRect().bottom")
    assert box <= PHONE["height"]
    room.screenshot(path=artifacts / "page-room.png")

    mentions = open_page("/mentions/", alice)
    assert _fits_without_horizontal_scroll(mentions)
