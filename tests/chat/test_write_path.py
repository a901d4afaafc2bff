"""One write path: the WebSocket's batches, REST, the admin and a shell's ORM call all write a new
message with Message.create_batch, refuse the same bodies, and publish the rows they wrote right
after commit, without reading them back (the relay's paging flush is for what was left pending).
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat import actions, relay
from chat.models import Message, OutboxEvent
from tests.support.api import token_client


def _websocket(room, author, body):  # what chat/batching.py hands the action
    (result,) = actions.post_messages([actions.PostRequest(author, room, body)])
    if isinstance(result, actions.ActionError):
        raise result


def _action(room, author, body):
    actions.post_message(author=author, room=room, body=body)


def _rest(room, author, body):
    response = token_client(author).post(
        f"/api/rooms/{room.slug}/messages/", {"body": body}, format="json"
    )
    if response.status_code != 201:
        raise actions.ActionError(response.json()["code"], "refused")


def _admin(room, author, body):
    staff = get_user_model().objects.get_or_create(
        username="root", is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(staff[0])
    response = client.post(
        "/admin/chat/message/add/", {"room": room.pk, "author": author.pk, "body": body}
    )
    if response.status_code != 302:
        (error,) = response.context["adminform"].form.errors["body"].as_data()
        raise actions.ActionError(error.code, "refused")


def _orm(room, author, body):
    Message.objects.create(room=room, author=author, body=body)


CALLERS = [_websocket, _action, _rest, _admin, _orm]


@pytest.fixture
def slow_flushes(monkeypatch):
    """The flushes that read pending rows back from the database."""
    calls = []
    flush = relay._flush

    def counted(rows):
        calls.append(rows)
        return flush(rows)

    monkeypatch.setattr(relay, "_flush", counted)
    return calls


@pytest.mark.parametrize("write", CALLERS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.django_db(transaction=True)
def test_every_caller_publishes_what_it_wrote_at_once(
    write, lobby, bob, stream_events, slow_flushes
):
    write(lobby, bob, "hello")
    write(lobby, bob, "again")
    published = [(e["seq"], e["payload"]["message"]["body"]) for e in stream_events()]
    assert published == [(1, "hello"), (2, "again")]
    assert slow_flushes == []


@pytest.mark.parametrize("write", CALLERS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.django_db(transaction=True)
def test_every_caller_refuses_the_same_body(write, lobby, bob, stream_events):
    with pytest.raises(actions.ActionError) as err:
        write(lobby, bob, "x" * 4001)
    assert err.value.code == "body_too_long"
    assert Message.objects.count() == 0
    assert stream_events() == []


@pytest.mark.django_db(transaction=True)
def test_rows_left_pending_are_published_first_by_reading_them_back(
    lobby, bob, stream_events, slow_flushes
):
    """When more than what it wrote is pending (an earlier publish failed), the after-commit
    flush publishes everything pending, oldest first."""
    _orm(lobby, bob, "left pending")
    OutboxEvent.objects.update(published_at=None)
    relay.get_redis().delete(relay.published_key("chat.message"), "chat.message")
    _action(lobby, bob, "next")
    assert [e["payload"]["message"]["body"] for e in stream_events()] == ["left pending", "next"]
    assert len(slow_flushes) == 1
    assert not OutboxEvent.objects.filter(published_at=None).exists()
