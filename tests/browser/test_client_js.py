"""static/parley/client.js in a real browser against a real daphne process."""

from __future__ import annotations

import pytest
from django.db.models import F

from chat import actions
from chat.models import Message, Room
from tests.support import history
from tests.support.procs import Daphne
from tests.support.rooms import C
from tests.support.ws import session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def _open_room(browser, server, user, slug="lobby"):
    context = browser.new_context(viewport={"width": 390, "height": 700})
    cookie = session_cookie(user).split("=", 1)[1]
    context.add_cookies(
        [{"name": "sessionid", "value": cookie, "url": f"http://127.0.0.1:{server.port}"}]
    )
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{server.port}/rooms/{slug}/")
    page.wait_for_selector("#state[data-state='live']")
    return page


def _seqs(page) -> list[int]:
    return page.eval_on_selector_all("#messages li", "els => els.map(e => Number(e.dataset.seq))")


def _wait_for_seq(page, seq: int) -> None:
    page.wait_for_selector(f"#messages li[data-seq='{seq}']", timeout=10_000)


def test_history_then_live_messages_from_any_write_path(browser, server, lobby, alice, bob):
    Message.objects.create(room=lobby, author=alice, body="before the page opened")
    page = _open_room(browser, server, bob)
    _wait_for_seq(page, 1)

    actions.post_message(author=alice, room=lobby, body="through the action")
    Message.objects.create(room=lobby, author=alice, body="through the ORM")
    _wait_for_seq(page, 3)

    assert _seqs(page) == [1, 2, 3]
    page.close()


def test_send_box_posts_and_both_pages_see_it(browser, server, lobby, alice, bob, artifacts):
    page_a = _open_room(browser, server, alice)
    page_b = _open_room(browser, server, bob)

    page_a.fill("#body", "hello from the browser")
    page_a.press("#body", "Enter")
    _wait_for_seq(page_b, 1)
    _wait_for_seq(page_a, 1)

    assert page_b.inner_text("#messages li[data-seq='1'] .author") == "alice"
    assert page_b.inner_text("#messages li[data-seq='1'] .body") == "hello from the browser"
    assert Message.objects.get().body == "hello from the browser"
    page_a.screenshot(path=artifacts / "room-alice.png")
    page_a.close()
    page_b.close()


def test_bodies_render_as_text(browser, server, lobby, alice, bob):
    page = _open_room(browser, server, bob)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    body = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    actions.post_message(author=alice, room=lobby, body=body)
    _wait_for_seq(page, 1)

    assert page.inner_text("#messages li[data-seq='1'] .body") == body
    assert page.query_selector("#messages img") is None
    assert dialogs == []
    page.close()


def test_client_recovers_a_gap_with_sync(browser, server, lobby, alice, bob):
    page = _open_room(browser, server, bob)
    actions.post_message(author=alice, room=lobby, body="one")
    _wait_for_seq(page, 1)
    # Three messages whose live frames never reach the page: saved without publishing.
    Message.objects.bulk_create(
        [
            Message(room=lobby, author=alice, body=f"unseen {seq}", seq=seq, change=C + seq)
            for seq in (2, 3, 4)
        ]
    )
    Room.objects.filter(pk=lobby.pk).update(
        last_seq=F("last_seq") + 3, last_change=F("last_change") + 3
    )
    # The page sees seq 4 right after seq 1: it must drop it, ask for everything after 1 and
    # show 2, 3, 4 in order.
    frame = {
        "type": "message.new",
        "change": C + 4,
        "message": {"seq": 4, "room": "lobby", "body": "early"},
    }
    page.evaluate("(frame) => window.parleyRoom._receive(frame)", frame)
    _wait_for_seq(page, 4)

    assert _seqs(page) == [1, 2, 3, 4]
    page.close()


def test_reconnects_and_resumes_without_gap_or_duplicate(browser, server, lobby, alice, bob):
    page = _open_room(browser, server, bob)
    actions.post_message(author=alice, room=lobby, body="before the cut")
    _wait_for_seq(page, 1)

    server.stop(sig_kill=True)  # the server dies under the page
    page.wait_for_selector("#state:is([data-state='offline'], [data-state='reconnecting'])")
    for n in range(3):
        actions.post_message(author=alice, room=lobby, body=f"missed {n}")
    restarted = Daphne(server.log_path.parent, name="daphne-2", port=server.port).start()
    try:
        _wait_for_seq(page, 4)
        page.wait_for_selector("#state[data-state='live']")
        assert _seqs(page) == [1, 2, 3, 4]
    finally:
        page.close()
        restarted.stop()


def test_edits_and_deletes_replace_the_message_in_place(browser, server, lobby, alice, bob):
    page = _open_room(browser, server, bob)
    message = actions.post_message(author=alice, room=lobby, body="first draft").message
    _wait_for_seq(page, 1)

    edited = actions.edit_message(user=alice, message=message, body="final")
    page.wait_for_selector("#messages li[data-seq='1']:has-text('(edited)')")
    assert page.inner_text("#messages li[data-seq='1'] .body") == "final (edited)"

    actions.delete_message(user=alice, message=edited)
    page.wait_for_selector("#messages li.deleted[data-seq='1']")
    assert page.inner_text("#messages li[data-seq='1'] .body") == "message deleted"
    assert _seqs(page) == [1]
    page.close()


@pytest.mark.parametrize("k", [1, 4])
def test_dropping_mid_replay_resumes_by_the_rule_and_converges(
    browser, server, lobby, alice, bob, k
):
    """The page's client drops its socket after every k-th replay frame; resuming by the rule
    (highest seq, change of the last frame that carried one), it ends with the server's state."""
    history.post_seen(lobby, alice)
    page = _open_room(browser, server, bob)
    _wait_for_seq(page, history.SEEN)
    page.evaluate("() => window.parleyRoom.stop()")
    page.wait_for_selector("#state[data-state='closed']")

    history.change_while_away(lobby, alice)
    page.evaluate(
        """(k) => {
            const room = window.parleyRoom;
            const receive = room._receive.bind(room);
            let replayed = 0;
            room._receive = (frame) => {
                receive(frame);
                if (frame.replay && ++replayed % k === 0 && room.socket) room.socket.close();
            };
            room.minDelayMs = 10;
            room.maxDelayMs = 40;
            room.start();
        }""",
        k,
    )
    seq, change = history.FINAL
    page.wait_for_function(
        f"() => window.parleyRoom.lastSeq === {seq} && window.parleyRoom.lastChange === {change}"
        " && !window.parleyRoom.syncing",
        timeout=20_000,
    )
    expected = {}
    for message in Message.objects.filter(room=lobby).order_by("seq"):
        if message.deleted_at:
            expected[message.seq] = "message deleted"
        else:
            expected[message.seq] = message.body + (" (edited)" if message.edited_at else "")
    shown = page.eval_on_selector_all(
        "#messages li",
        "els => els.map(e => [Number(e.dataset.seq), e.querySelector('.body').innerText.trim()])",
    )
    assert dict(shown) == expected and [s for s, _ in shown] == sorted(expected)
    page.close()
