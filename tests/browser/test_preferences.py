"""The theme toggle keeps the choice on the server: another browser (a fresh context, nothing in
its localStorage) opens in it; an anonymous page keeps using the browser's own choice. Uploaded
avatars show beside messages, also those of people the page met after it loaded."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from PIL import Image
from playwright.sync_api import expect

from accounts.actions import set_avatar
from accounts.models import Preference
from chat import actions
from tests.browser.conftest import DESKTOP

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def test_theme_toggle_follows_the_user_to_another_browser(open_page, lobby, alice):
    page = open_page("/rooms/lobby/", alice, viewport=DESKTOP)  # light system scheme
    assert page.get_attribute("html", "data-theme") == "light"
    page.click("#theme-toggle")
    page.wait_for_selector("html[data-theme-saved='dark']")  # the server answered
    assert Preference.objects.get(user=alice).theme == "dark"
    other = open_page("/rooms/lobby/", alice, viewport=DESKTOP)  # another browser, light system
    assert other.get_attribute("html", "data-theme") == "dark"
    assert other.get_attribute("#theme-toggle", "aria-pressed") == "true"
    other.click("#theme-toggle")
    other.wait_for_selector("html[data-theme-saved='light']")
    assert Preference.objects.get(user=alice).theme == "light"


def _picture() -> bytes:
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 60)).save(picture, format="PNG")
    return picture.getvalue()


def test_an_uploaded_avatar_shows_beside_messages_others_keep_initials(
    open_page, lobby, alice, bob
):
    set_avatar(user=alice, data=_picture())
    actions.post_message(room=lobby, author=alice, body="with a face")
    actions.post_message(room=lobby, author=bob, body="with initials")
    page = open_page("/rooms/lobby/", bob, viewport=DESKTOP)
    face = page.locator("#messages li[data-author='alice'] img.avatar")
    face.wait_for()
    face.evaluate("img => img.decode()")  # loaded and decoded: a real picture
    assert face.evaluate("img => img.naturalWidth") == 128
    assert page.locator("#messages li[data-author='bob'] span.avatar").inner_text() == "BO"


def test_a_member_who_joins_after_the_page_loaded_shows_their_picture(open_page, lobby, alice, bob):
    page = open_page("/rooms/lobby/", bob, viewport=DESKTOP)
    page.wait_for_selector("#state[data-state='live']")
    carol = get_user_model().objects.create_user("carol", password="pw-carol")
    set_avatar(user=carol, data=_picture())
    actions.join_room(user=carol, room=lobby)
    actions.post_message(room=lobby, author=carol, body="new here, with a face")
    actions.post_message(room=lobby, author=alice, body="welcome")
    face = page.locator("#messages li[data-author='carol'] img.avatar")
    face.wait_for()
    face.evaluate("img => img.decode()")
    assert face.evaluate("img => img.naturalWidth") == 128
    expect(page.locator("#messages li[data-author='alice'] span.avatar")).to_have_text("AL")
