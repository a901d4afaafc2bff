"""The admin writes messages through the same path as everyone: the body rule of every post (a
bad body is a form error, not a 500), the seq, the outbox event, the publish."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat import actions
from chat.models import Message


@pytest.fixture
def staff_client(db):
    staff = get_user_model().objects.create_superuser("root", password="pw-root")
    client = Client()
    client.force_login(staff)
    return client


def _add(client: Client, room, author, body: str):
    return client.post(
        "/admin/chat/message/add/", {"room": room.pk, "author": author.pk, "body": body}
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [("x" * 4001, "body is longer than 4000 characters"), ("   ", "This field is required.")],
)
@pytest.mark.django_db(transaction=True)
def test_a_bad_body_is_a_form_error(staff_client, lobby, bob, stream_events, body, error):
    response = _add(staff_client, lobby, bob, body)
    assert response.status_code == 200
    assert error in response.context["adminform"].form.errors["body"]
    assert Message.objects.count() == 0
    assert stream_events() == []


@pytest.mark.django_db(transaction=True)
def test_a_nul_is_refused_before_the_form(staff_client, lobby, bob, stream_events):
    """web/text_input.py refuses NUL characters in any request (a 400, not a 500)."""
    assert _add(staff_client, lobby, bob, "nul \x00 inside").status_code == 400
    assert Message.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_body_rule_is_the_post_actions(staff_client, lobby, bob, stream_events):
    """The same limit as a post's: the longest body a post may have is saved and published."""
    response = _add(staff_client, lobby, bob, "é" * 4000)
    assert response.status_code == 302
    with pytest.raises(actions.ActionError) as err:
        actions.post_message(author=bob, room=lobby, body="é" * 4001)
    assert err.value.code == "body_too_long"
    assert [len(e["payload"]["message"]["body"]) for e in stream_events()] == [4000]


@pytest.mark.django_db(transaction=True)
def test_a_shell_save_checks_the_body_too(lobby, bob, stream_events):
    for body, code in [("", "body_required"), ("x" * 4001, "body_too_long")]:
        with pytest.raises(actions.ActionError) as err:
            Message.objects.create(room=lobby, author=bob, body=body)
        assert err.value.code == code
    assert Message.objects.count() == 0
    assert stream_events() == []
    kept = Message(room=lobby, author=bob, body="")
    with pytest.raises(actions.ActionError):
        kept.save()
    kept.body = "fixed"
    kept.save()  # a refused message can be corrected and saved
    assert kept.seq == 1
