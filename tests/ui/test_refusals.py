"""A refusal in the reader's language (chat.refusals): every detail an action refuses with has
a message id, French translates each of them, English pages say exactly what the API says."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from django.utils import translation

from chat import limits, refusals
from chat.errors import ActionError

FRENCH = {"HTTP_ACCEPT_LANGUAGE": "fr-FR,fr;q=0.9"}
CHAT = Path(__file__).resolve().parents[2] / "chat"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _refusal_details() -> list[str]:
    """A sample of each detail chat's modules refuse an action with: the text as written, each
    value the code puts in replaced by a sample one (repr'd where the code repr's it)."""
    details = []
    actions = sorted((CHAT / "actions").glob("*.py"))
    for path in [*actions, CHAT / "validation.py", CHAT / "errors.py", CHAT / "idempotency.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "ActionError"):
                continue
            detail = node.args[1]
            if isinstance(detail, ast.Constant):
                details.append(detail.value)
            else:
                assert isinstance(detail, ast.JoinedStr), ast.dump(detail)
                details.append(
                    "".join(
                        part.value
                        if isinstance(part, ast.Constant)
                        else "'x y'"
                        if part.conversion == ord("r")
                        else "7"
                        for part in detail.values
                    )
                )
    return details


def test_every_refusal_of_an_action_has_a_message_id():
    details = [*_refusal_details(), limits.rate_limited_detail()]
    assert len(details) > 20
    missing = [detail for detail in details if refusals.template_for(detail) is None]
    assert missing == []


def test_french_translates_every_refusal_with_its_values():
    with translation.override("fr"):
        for template in refusals.DETAILS:
            french = translation.gettext(template)
            assert french != template, template
            assert sorted(PLACEHOLDER.findall(french)) == sorted(PLACEHOLDER.findall(template))


def test_the_english_page_says_what_the_api_says_french_its_own_words():
    refusal = ActionError("no_such_user", "there is no user 'ghost'")
    with translation.override("en"):
        assert refusals.text(refusal) == "there is no user 'ghost'"
        assert refusals.for_scripts() == {}
    with translation.override("fr"):
        assert refusals.text(refusal) == "il n’y a pas d’utilisateur 'ghost'"
        assert refusals.translate("body is longer than 4000 characters") == (
            "le message dépasse 4000 caractères"
        )
        assert refusals.translate("something new") == "something new"  # not listed: as it is
        assert len(refusals.for_scripts()) == len(refusals.DETAILS)


@pytest.mark.django_db
def test_pages_show_refusals_in_french(client, alice, lobby, secret_room):
    client.force_login(alice)
    as_alice = client
    page = as_alice.post("/rooms/secret/invite/", {"username": "ghost"}, follow=True, **FRENCH)
    assert "il n’y a pas d’utilisateur &#x27;ghost&#x27;" in page.text
    taken = as_alice.post("/rooms/", {"slug": "lobby", "title": "Again"}, **FRENCH)
    assert taken.status_code == 400
    assert "un salon &#x27;lobby&#x27; existe déjà" in taken.text
    assert "Identifiant" in taken.text and "Privé (membres sur invitation)" in taken.text


@pytest.mark.django_db
def test_the_room_page_gives_its_script_the_translated_refusals(client, alice, lobby):
    client.force_login(alice)

    def data(**headers) -> dict:
        text = client.get("/rooms/lobby/", **headers).text
        found = re.search(r'<script id="room-data" type="application/json">(.*?)</script>', text)
        return json.loads(found.group(1))

    assert data(HTTP_ACCEPT_LANGUAGE="en")["refusals"] == {}
    french = data(**FRENCH)["refusals"]
    assert french["you are not a member of this room"] == "vous n’êtes pas membre de ce salon"


@pytest.mark.django_db
def test_not_found_is_a_page_of_the_site_in_the_readers_language(client, mallory, secret_room):
    client.force_login(mallory)
    page = client.get("/rooms/secret/", **FRENCH)
    assert page.status_code == 404
    assert "<h1>Introuvable</h1>" in page.text and 'href="/"' in page.text
