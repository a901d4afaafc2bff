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


def test_refusals_sending_and_offline_marks_are_french(open_page, server, lobby, alice):
    posted = actions.post_message(room=lobby, author=alice, body="à corriger")
    page = _room(open_page, alice, "fr-FR")
    # A post the server refuses: why, in French (the socket's detail is English).
    page.eval_on_selector("#body", "el => { el.value = 'mauvais \\u0000 octet'; }")
    page.press("#body", "Enter")
    expect(page.locator("#outbox li[data-status='failed'] .reason")).to_contain_text(
        "Non envoyé : le message contient un caractère NUL"
    )
    # An edit the REST API refuses (deleted meanwhile): why, in French.
    page.hover("#messages li[data-seq='1']")
    page.click("#messages li[data-seq='1'] .tool[data-action=edit]")
    actions.delete_message(message=posted.message, user=alice)
    page.fill("#messages li[data-seq='1'] .edit-form textarea", "corrigé")
    page.press("#messages li[data-seq='1'] .edit-form textarea", "Enter")
    expect(page.locator(".edit-error")).to_have_text("Non enregistré : le message a été supprimé")
    # Offline: the online list is marked stale and a post waits, marked as being sent.
    server.stop(sig_kill=True)
    expect(page.locator("#online .stale-note")).to_have_text(" (pas à jour : hors ligne)")
    page.fill("#body", "plus tard")
    page.press("#body", "Enter")
    expect(page.locator("#outbox li[data-status='pending'] .sending")).to_have_text("envoi…")


def test_dashboard_chart_titles_are_french(open_page, alice):
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    page = open_page("/analytics/dashboard/", alice, viewport=DESKTOP, locale="fr-FR")
    # Each chart (a picture made of data only) is named by its French caption.
    for name in (
        "Messages par minute (30 dernières min)",
        "Utilisateurs actifs par minute",
        "Retard des abonnés (événements pas encore traités)",
    ):
        expect(page.get_by_role("img", name=name)).to_have_count(1)
    # No message yet: the top rooms' chart is not drawn, and the page says so in French.
    expect(page.locator("#chart-rooms figcaption")).to_have_text(
        "Salons les plus actifs (messages)"
    )
    expect(page.locator("#chart-rooms .chart-note")).to_have_text("Pas encore de message.")
    expect(page.locator("#chart-rooms svg")).to_be_hidden()
