"""The page's language follows the browser's (Accept-Language): French is the extra locale that
proves the templates, the Python messages and the JS-rendered strings all go through gettext."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from chat import actions
from tests.browser.conftest import DESKTOP

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def _room(open_page, user, locale: str):
    page = open_page("/rooms/lobby/", user, viewport=DESKTOP, locale=locale)
    page.wait_for_selector("#state[data-state='live']")
    return page


def _post_and_delete(lobby, alice) -> None:
    posted = actions.post_message(room=lobby, author=alice, body="bonjour")
    actions.delete_message(message=posted.message, user=alice)


@pytest.mark.parametrize(
    ("locale", "lang", "send", "live", "tombstone", "edit"),
    [
        ("fr-FR", "fr", "Envoyer", "en direct", "message supprimé", "Modifier"),
        ("en-US", "en", "Send", "live", "message deleted", "Edit"),
    ],
)
def test_room_page_and_js_strings_follow_the_browser_language(
    open_page, lobby, alice, locale, lang, send, live, tombstone, edit
):
    _post_and_delete(lobby, alice)
    actions.post_message(room=lobby, author=alice, body="still here")
    page = _room(open_page, alice, locale)
    assert page.get_attribute("html", "lang") == lang
    # Rendered by the template.
    expect(page.locator("#send button[type=submit]")).to_have_text(send)
    # Rendered by the modules through the JavaScriptCatalog: the state line, a deleted
    # message's tombstone from the history replay, a message's action buttons.
    expect(page.locator("#state")).to_have_text(live)
    expect(page.locator("#messages li.deleted .body")).to_have_text(tombstone)
    expect(page.locator("#messages .tool[data-action=edit]")).to_have_text(edit)
