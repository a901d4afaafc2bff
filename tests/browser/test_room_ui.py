"""The room page as a product, in real Chromium against a real daphne: the sidebar, messages
grouped with their times and links, where a room opens, actions on messages, the composer,
themes, the phone drawer and the room switcher. Desktop-sized unless a test says phone."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from chat import actions
from chat.models import Membership, Mention, Message, Room
from tests.browser.conftest import DESKTOP, PHONE
from tests.support.procs import wait_until
from tests.support.rooms import C

BOTH_SIZES = pytest.mark.parametrize(
    "viewport", [DESKTOP, {"width": 390, "height": 844}], ids=["1440x900", "390x844"]
)
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def _room(open_page, user, slug="lobby", query="", viewport=DESKTOP, dark=False):
    page = open_page(f"/rooms/{slug}/{query}", user, viewport=viewport, dark=dark)
    page.wait_for_selector("#state[data-state='live']")
    return page


def _in_view(page, selector: str) -> bool:
    """The element is inside the visible part of the message list."""
    return page.eval_on_selector(
        selector,
        """el => { const r = el.getBoundingClientRect();
                   const s = document.getElementById('scroller').getBoundingClientRect();
                   return r.top >= s.top - 1 && r.bottom <= s.bottom + 1; }""",
    )


def test_sidebar_follows_activity_with_unread_counts_and_tab_title(open_page, lobby, alice, bob):
    garden = actions.create_room(creator=bob, slug="garden", title="Garden")
    actions.join_room(user=alice, room=garden)
    actions.post_message(author=bob, room=lobby, body="hello **lobby**")
    actions.open_direct_room(user=alice, other=bob)
    page = _room(open_page, alice)
    page.wait_for_selector("html[data-me='live']")
    # Most recent first: lobby had the last message; the direct room is listed by bob's name.
    assert page.eval_on_selector_all(
        "#side-rooms .side-room", "els => els.map(e => e.dataset.slug)"
    ) == ["lobby", "garden"]
    assert page.inner_text("#side-dms .side-name") == "bob"
    # Previews read as the message does, without its Markdown marks (as written, then live).
    assert "bob: hello lobby" in page.inner_text("#side-rooms .side-room[data-slug='lobby']")

    actions.post_message(author=bob, room=garden, body="in the _garden_")
    garden_badge = "#side-rooms .side-room[data-slug='garden'] .badge.unread"
    expect(page.locator(garden_badge)).to_have_text("1")
    assert page.eval_on_selector_all(
        "#side-rooms .side-room", "els => els.map(e => e.dataset.slug)"
    ) == ["garden", "lobby"]
    expect(page).to_have_title("(1) Lobby · Parley")
    expect(page.locator("#side-rooms .side-room[data-slug='garden'] .side-preview")).to_have_text(
        "bob: in the garden"
    )
    # The room being read has no badge.
    assert page.is_hidden("#side-rooms .side-room[data-slug='lobby'] .badge.unread")


@BOTH_SIZES
def test_messages_are_grouped_with_times_links_and_an_edited_mark(
    open_page, lobby, alice, bob, viewport
):
    for author, body in [
        (alice, "first"),
        (alice, "second, see https://example.com/a?b=1."),
        (bob, "mail me: mailto:bob@example.com"),
    ]:
        actions.post_message(author=author, room=lobby, body=body)
    actions.edit_message(user=alice, message=Message.objects.get(seq=1), body="first, fixed")
    Membership.objects.filter(room=lobby).update(last_read_seq=3)
    page = _room(open_page, bob, viewport=viewport)
    page.wait_for_selector("#messages li[data-seq='3']")

    groups = page.eval_on_selector_all(
        "#messages li", "els => els.map(e => [e.classList.contains('cont'), e.dataset.author])"
    )
    assert groups == [[False, "alice"], [True, "alice"], [False, "bob"]]
    stamp = page.locator("#messages li[data-seq='1'] time")
    created = Message.objects.get(seq=1).created_at
    assert datetime.fromisoformat(stamp.get_attribute("datetime")) == created
    assert stamp.get_attribute("title")  # the full date on hover
    assert page.inner_text("#messages li[data-seq='1'] .edited") == "(edited)"
    link = page.locator("#messages li[data-seq='2'] .body a")
    assert link.get_attribute("href") == "https://example.com/a?b=1"
    assert link.get_attribute("target") == "_blank"
    assert link.get_attribute("rel") == "noopener noreferrer nofollow"
    assert page.inner_text("#messages li[data-seq='2'] .body") == (
        "second, see https://example.com/a?b=1."
    )
    assert page.get_attribute("#messages li[data-seq='3'] .body a", "href") == (
        "mailto:bob@example.com"
    )


XSS = [
    "<script>window.pwned = 1</script>",
    '<img src=x onerror="window.pwned = 2">',
    "javascript:window.pwned=3",
    "[click](javascript:window.pwned=4)",
    "data:text/html,<script>window.pwned=5</script>",
    '<a href="javascript:window.pwned=6">x</a>',
    'https://example.com/"onmouseover="window.pwned=7',
    '<svg onload="window.pwned=8">',
    "[x]: javascript:window.pwned=9\n\n[click][x]",
    "![img](https://example.com/a.png)",
    "```\n<script>window.pwned=10</script>\n```",
    "<https://example.com/ok> and <javascript:window.pwned=11>",
    "`<img src=x onerror=window.pwned=12>`",
]


def test_hostile_messages_stay_text(open_page, lobby, alice, bob):
    for body in XSS:
        message = actions.post_message(author=alice, room=lobby, body=body).message
    Mention.objects.create(user=bob, message=message)
    page = _room(open_page, bob)
    page.wait_for_selector(f"#messages li[data-seq='{len(XSS)}']")
    page.hover("#messages li[data-seq='7'] .body")
    assert page.evaluate("() => window.pwned") is None
    assert (
        page.eval_on_selector_all("#messages img, #messages script, #messages svg", "e => e.length")
        == 0
    )
    hrefs = page.eval_on_selector_all("#messages .body a", "els => els.map(a => a.href)")
    assert all(h.startswith(("https:", "http:", "mailto:")) for h in hrefs)
    bodies = page.eval_on_selector_all(
        "#messages .body", "els => els.map(e => e.textContent.trim())"
    )
    # HTML, [text](url) links and images stay text; code stays code.
    assert bodies[:8] == XSS[:8]
    assert page.inner_text("#messages li[data-seq='11'] pre code").strip() == (
        "<script>window.pwned=10</script>"
    )


def test_markdown_subset_is_rendered_alike_in_the_room_and_on_the_mentions_page(
    open_page, lobby, alice, bob
):
    body = "**bold** _it_ ~~gone~~ `code` @bob\n\n> quoted\n\n- one\n- two\n\n```\nblock\n```"
    message = actions.post_message(author=alice, room=lobby, body=body).message
    Mention.objects.create(user=bob, message=message)
    page = _room(open_page, bob)
    page.wait_for_selector("#messages li[data-seq='1']")
    tags = "els => els.map(e => e.tagName + ':' + e.textContent)"
    shown = page.eval_on_selector_all(
        "#messages li[data-seq='1'] .body :is(strong, em, del, code, blockquote, li, pre)", tags
    )
    assert shown == [
        "STRONG:bold",
        "EM:it",
        "DEL:gone",
        "CODE:code",
        "BLOCKQUOTE:\nquoted\n",
        "LI:one",
        "LI:two",
        "PRE:block\n",
        "CODE:block\n",
    ]
    mentions = open_page("/mentions/", bob, viewport=DESKTOP)
    mentions.wait_for_selector(".mention-body.rendered")
    assert (
        mentions.eval_on_selector_all(
            ".mention-body :is(strong, em, del, code, blockquote, li, pre)", tags
        )
        == shown
    )


@BOTH_SIZES
def test_a_room_opens_at_the_first_unread_message(open_page, lobby, alice, bob, viewport):
    for n in range(1, 121):
        Message.objects.create(room=lobby, author=alice, body=f"message {n}")
    Membership.objects.filter(user=bob, room=lobby).update(last_read_seq=30)
    page = _room(open_page, bob, viewport=viewport)
    page.wait_for_selector("#messages li.first-unread[data-seq='31']")
    assert page.get_attribute("#messages li[data-seq='31']", "data-divider") == "New messages"
    assert _in_view(page, "#messages li[data-seq='31']")
    assert not _in_view(page, "#messages li[data-seq='120']")
    page.wait_for_selector("#jump-latest", state="visible")
    # Reading moves the read mark only as far as what was seen.
    wait_until(
        lambda: Membership.objects.get(user=bob, room=lobby).last_read_seq > 30,
        timeout=10,
        what="the read mark moved to what is on the screen",
    )
    assert Membership.objects.get(user=bob, room=lobby).last_read_seq < 120

    page.click("#jump-latest")
    page.wait_for_selector("#jump-latest", state="hidden")
    assert _in_view(page, "#messages li[data-seq='120']")
    wait_until(
        lambda: Membership.objects.get(user=bob, room=lobby).last_read_seq == 120,
        timeout=10,
        what="the room read to the end once seen",
    )


def test_a_link_to_a_message_opens_the_room_there(open_page, lobby, alice, bob):
    for n in range(1, 121):
        Message.objects.create(room=lobby, author=alice, body=f"message {n}")
    Membership.objects.filter(room=lobby).update(last_read_seq=120)
    page = _room(open_page, bob, query="?seq=40")
    page.wait_for_selector("#messages li.highlight[data-seq='40']")
    assert _in_view(page, "#messages li[data-seq='40']")
    page.hover("#messages li[data-seq='40'] .body")
    assert page.get_attribute("#messages li[data-seq='40'] [data-action='link']", "href") == (
        "/rooms/lobby/?seq=40"
    )
    assert open_page("/rooms/lobby/?seq=x", bob).locator("body").inner_text() == (
        "seq must be a message number"
    )


def test_a_link_to_a_message_older_than_the_replay_pages_back_to_it(open_page, lobby, alice, bob):
    Message.objects.bulk_create(
        [
            Message(room=lobby, author=alice, body=f"m{n}", seq=n, change=C + n)
            for n in range(1, 1201)
        ]
    )
    Room.objects.filter(pk=lobby.pk).update(last_seq=1200, last_change=C + 1200)
    Membership.objects.filter(room=lobby).update(last_read_seq=1200)
    page = _room(open_page, bob, query="?seq=130")  # the socket replays 201 to 1200
    page.wait_for_selector("#messages li.highlight[data-seq='130']", timeout=20_000)
    assert _in_view(page, "#messages li[data-seq='130']")
    # Two pages back (101 to 200), not the whole room.
    assert page.eval_on_selector("#messages li", "el => Number(el.dataset.seq)") == 101


@BOTH_SIZES
def test_edit_and_delete_from_the_page_reach_the_other_reader(
    open_page, lobby, alice, bob, viewport
):
    page_a, page_b = (
        _room(open_page, alice, viewport=viewport),
        _room(open_page, bob, viewport=viewport),
    )
    page_a.fill("#body", "helo")
    page_a.press("#body", "Enter")
    page_a.wait_for_selector("#messages li[data-seq='1'][data-status='sent']")
    page_b.wait_for_selector("#messages li[data-seq='1']")

    page_a.press("#body", "ArrowUp")  # the composer is empty: edit your last message
    page_a.fill("#messages li[data-seq='1'] .edit-form textarea", "hello")
    page_a.press("#messages li[data-seq='1'] .edit-form textarea", "Enter")
    expect(page_b.locator("#messages li[data-seq='1'] .body")).to_have_text("hello (edited)")
    assert Message.objects.get(seq=1).body == "hello"

    # Bob may not edit or delete alice's message; alice owns the room and may delete his.
    page_b.fill("#body", "from bob")
    page_b.press("#body", "Enter")
    page_a.wait_for_selector("#messages li[data-seq='2']")
    assert page_b.locator("#messages li[data-seq='1'] [data-action]").evaluate_all(
        "els => els.map(e => e.dataset.action)"
    ) == ["link"]
    page_a.once("dialog", lambda dialog: dialog.accept())
    page_a.hover("#messages li[data-seq='2'] .body")
    page_a.click("#messages li[data-seq='2'] [data-action='delete']")
    expect(page_b.locator("#messages li[data-seq='2'].deleted .body")).to_have_text(
        "message deleted"
    )
    assert Message.objects.get(seq=2).deleted_at is not None
    # A dismissed confirmation deletes nothing.
    page_a.once("dialog", lambda dialog: dialog.dismiss())
    page_a.hover("#messages li[data-seq='1'] .body")
    page_a.click("#messages li[data-seq='1'] [data-action='delete']")
    page_a.wait_for_selector("#messages li[data-seq='1']:not(.deleted)")
    assert Message.objects.get(seq=1).deleted_at is None


@BOTH_SIZES
def test_composer_keeps_drafts_says_why_a_post_was_refused_and_offers_retry(
    open_page, lobby, alice, bob, viewport
):
    page = _room(open_page, alice, viewport=viewport)
    page.fill("#body", "half a thought")
    page.reload()
    page.wait_for_selector("#state[data-state='live']")
    assert page.input_value("#body") == "half a thought"

    page.fill("#body", "line one")
    page.press("#body", "Shift+Enter")
    page.type("#body", "line two")
    page.press("#body", "Enter")
    page.wait_for_selector("#messages li[data-seq='1'][data-status='sent']")
    assert Message.objects.get().body == "line one\nline two"
    assert page.input_value("#body") == ""
    # "sending…" and then nothing: a sent message carries no mark.
    assert "sent" not in page.inner_text("#messages li[data-seq='1']")

    page.eval_on_selector("#body", "el => { el.value = 'bad \\u0000 byte'; }")
    page.press("#body", "Enter")
    failed = page.locator("#outbox li[data-status='failed']")
    expect(failed.locator(".reason")).to_contain_text("Not sent: body contains a NUL")
    failed.locator("button.retry").click()
    expect(page.locator("#outbox li[data-status='failed']")).to_have_count(1)
    page.click("#outbox li[data-status='failed'] button.discard")
    expect(page.locator("#outbox li")).to_have_count(0)
    assert Message.objects.count() == 1


def test_typing_clears_when_the_message_arrives(open_page, lobby, alice, bob):
    page_a, page_b = _room(open_page, alice), _room(open_page, bob)
    page_a.type("#body", "on my way")
    page_b.wait_for_selector("#typing:has-text('alice is typing')")
    page_a.press("#body", "Enter")
    page_b.wait_for_selector("#messages li[data-seq='1']")
    assert page_b.inner_text("#typing") == ""


def test_dark_theme_follows_the_system_and_the_toggle_is_kept(open_page, lobby, alice):
    page = _room(open_page, alice, dark=True)
    assert page.get_attribute("html", "data-theme") == "dark"
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    page.click("#theme-toggle")
    assert page.get_attribute("html", "data-theme") == "light"
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") != background
    page.reload()
    assert page.get_attribute("html", "data-theme") == "light"
    assert page.get_attribute("#theme-toggle", "aria-pressed") == "false"


def test_phone_drawer_and_room_switcher(open_page, lobby, alice, bob):
    actions.open_direct_room(user=alice, other=bob)
    actions.create_room(creator=alice, slug="garden", title="Garden")
    page = _room(open_page, alice, viewport=PHONE)
    assert page.is_hidden("#sidebar")
    page.click("#drawer-open")
    page.wait_for_selector("#sidebar", state="visible")
    assert page.get_attribute("#drawer-open", "aria-expanded") == "true"
    page.keyboard.press("Escape")
    page.wait_for_selector("#sidebar", state="hidden")

    page.keyboard.press("Control+k")
    page.wait_for_selector("#switcher[open]")
    page.keyboard.type("gar")
    expect(page.locator("#switcher-results a")).to_have_text(["Garden"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/rooms/garden/")
    page.wait_for_selector("#state[data-state='live']")
    assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")


def test_mentions_seen_in_the_room_are_marked_read(open_page, lobby, alice, bob):
    message = actions.post_message(author=alice, room=lobby, body="@bob look").message
    mention = Mention.objects.create(user=bob, message=message)
    other = Mention.objects.create(
        user=bob, message=actions.post_message(author=alice, room=lobby, body="@bob 2").message
    )
    Mention.objects.filter(pk=other.pk).update(read_at=None)
    page = open_page("/rooms/lobby/", bob, viewport=DESKTOP)
    expect(page.locator("#mention-badge")).to_have_text("2")
    page.wait_for_selector("#messages li.mention[data-seq='2']")
    expect(page.locator("#mention-badge")).to_be_hidden()
    wait_until(
        lambda: not Mention.objects.filter(pk__in=[mention.pk, other.pk], read_at=None).exists(),
        timeout=10,
        what="the mentions on the screen marked read",
    )


def test_live_messages_are_announced_history_is_not_and_presence_goes_stale(
    open_page, server, lobby, alice, bob
):
    actions.post_message(author=alice, room=lobby, body="old news")
    page = _room(open_page, bob)
    page.wait_for_selector("#messages li[data-seq='1']")
    assert page.inner_text("#live-region") == ""
    assert page.get_attribute("#messages", "aria-live") is None
    actions.post_message(author=alice, room=lobby, body="fresh")
    expect(page.locator("#live-region")).to_have_text("alice: fresh")

    expect(page.locator("#online")).not_to_have_class("online stale")
    server.stop(sig_kill=True)
    expect(page.locator("#online")).to_have_class("online stale")


def test_notifications_are_asked_for_only_from_their_button(open_page, lobby, alice):
    page = _room(open_page, alice)
    page.click("#room-menu summary")
    button = page.locator("#notify-toggle")
    expect(button).to_be_visible()
    assert page.evaluate("() => Notification.permission") == "default"  # nothing asked on load
    page.context.grant_permissions(["notifications"])
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
    button.click()
    expect(button).to_have_attribute("aria-pressed", "false")


def test_skip_link_and_keyboard_reach_the_composer(open_page, lobby, alice):
    page = _room(open_page, alice)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    assert page.is_visible(".skip-link")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "content"


def test_on_a_touch_phone_return_adds_a_line_and_the_button_sends(open_page, lobby, alice):
    page = open_page("/rooms/lobby/", alice, viewport=PHONE, touch=True)
    page.wait_for_selector("#state[data-state='live']")
    page.fill("#body", "first line")
    page.press("#body", "Enter")
    page.type("#body", "second line")
    assert page.input_value("#body") == "first line\nsecond line"
    page.tap("#send button[type='submit']")
    page.wait_for_selector("#messages li[data-seq='1'][data-status='sent']")
    assert Message.objects.get().body == "first line\nsecond line"
    # A long press opens a message's actions.
    page.dispatch_event("#messages li[data-seq='1'] .body", "contextmenu")
    page.wait_for_selector("#messages li.tools-open[data-seq='1'] [data-action='edit']")
    assert page.is_visible("#messages li[data-seq='1'] [data-action='edit']")


def test_sound_toggle_is_kept(open_page, lobby, alice):
    page = _room(open_page, alice)
    expect(page.locator("#sound-toggle")).to_have_attribute("aria-pressed", "false")
    page.click("#room-menu summary")
    page.click("#sound-toggle")
    page.reload()
    page.wait_for_selector("#state[data-state='live']")
    expect(page.locator("#sound-toggle")).to_have_attribute("aria-pressed", "true")


def test_date_separators_mark_each_day(open_page, lobby, alice, bob):
    now = timezone.now()
    for days in (3, 1, 1, 0):
        message = actions.post_message(author=alice, room=lobby, body=f"{days} days ago").message
        Message.objects.filter(pk=message.pk).update(created_at=now - timedelta(days=days))
    Membership.objects.filter(room=lobby).update(last_read_seq=4)
    page = _room(open_page, bob)
    page.wait_for_selector("#messages li[data-seq='4']")
    days = page.eval_on_selector_all("#messages li", "els => els.map(e => e.dataset.day || '')")
    assert days[1:] == ["Yesterday", "", "Today"]
    assert days[0] not in ("", "Yesterday", "Today")
    # A new day starts a new group, even for the same author.
    assert page.eval_on_selector_all(
        "#messages li", "els => els.map(e => e.classList.contains('cont'))"
    ) == [False, False, True, False]
