"""A person downloads their own data (GET /account/export/, streamed), staff export anyone's
(``?username=`` or ``manage.py user export``), and nobody else gets another person's data."""

from __future__ import annotations

import http.client
import json

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections, transaction
from django.test import AsyncClient, Client

from accounts.tokens import create_token
from chat import actions, mentions
from chat.models import Message
from contract import events
from tests.support.events import published_events
from tests.support.ws import session_cookie

db = pytest.mark.django_db(transaction=True)
User = get_user_model()


def post(room, author, body: str):
    return actions.post_message(author=author, room=room, body=body).message


def conversation(alice, bob, lobby, secret_room) -> None:
    """alice and bob talk in two rooms and mention each other; bob has a token."""
    post(lobby, alice, "alice's secret plan, @bob")
    post(lobby, bob, "bob says hi")
    post(secret_room, bob, "bob whispers @alice")
    post(secret_room, alice, "alice whispers back")
    create_token(user=bob, name="bob-bot")
    with transaction.atomic():
        mentions.handle(published_events(events.TOPIC_MESSAGE))


async def get_export(user, query: str = ""):
    client = AsyncClient()
    await database_sync_to_async(client.force_login)(user)
    response = await client.get(f"/account/export/{query}")
    body = b"".join([p async for p in response.streaming_content]) if response.streaming else None
    # The test client keeps the connection its (thread-sensitive) view thread opened; a server
    # closes it when the response ends. Close it here, on that thread, as the server would.
    await sync_to_async(connections.close_all)()
    return response, body if body is not None else response.content


@pytest.mark.asyncio
@db
async def test_a_person_downloads_exactly_their_own_data(alice, bob, lobby, secret_room):
    await database_sync_to_async(conversation)(alice, bob, lobby, secret_room)

    response, body = await get_export(bob)

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/json"
    assert 'filename="parley-bob.json"' in response["Content-Disposition"]
    data = json.loads(body)
    assert data["profile"]["username"] == "bob"
    assert [(m["room"], m["body"], m["author"]) for m in data["messages"]] == [
        ("lobby", "bob says hi", "bob"),
        ("secret", "bob whispers @alice", "bob"),
    ]
    assert sorted((m["room"], m["role"]) for m in data["memberships"]) == [
        ("lobby", "member"),
        ("secret", "member"),
    ]
    assert [(m["room"], m["seq"]) for m in data["mentions"]] == [("lobby", 1)]
    assert [t["name"] for t in data["tokens"]] == ["bob-bot"]
    assert "plt_" not in body.decode() or all("plt_" in t["hint"] for t in data["tokens"])
    # Nothing of alice's: not her messages, nor the body of the message mentioning bob.
    assert "alice's secret plan" not in body.decode()
    assert "alice whispers back" not in body.decode()


@pytest.mark.asyncio
@db
async def test_nobody_but_staff_exports_another_person(alice, bob, lobby, secret_room):
    await database_sync_to_async(conversation)(alice, bob, lobby, secret_room)

    refused, body = await get_export(bob, "?username=alice")
    assert refused.status_code == 403
    assert json.loads(body)["code"] == "forbidden"
    assert b"alice's secret plan" not in body

    staff = await database_sync_to_async(User.objects.create_user)(
        "root", password="pw", is_staff=True
    )
    allowed, body = await get_export(staff, "?username=alice")
    assert allowed.status_code == 200
    assert [m["body"] for m in json.loads(body)["messages"]] == [
        "alice's secret plan, @bob",
        "alice whispers back",
    ]
    missing, _ = await get_export(staff, "?username=nobody")
    assert missing.status_code == 404
    invalid, _ = await get_export(staff, "?username=ali%00ce")
    assert invalid.status_code == 400


@db
def test_anonymous_visitors_are_sent_to_log_in(alice):
    response = Client().get("/account/export/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@db
def test_the_account_page_links_the_export(alice):
    client = Client()
    client.force_login(alice)
    assert b'href="/account/export/"' in client.get("/account/tokens/").content


@db
def test_staff_export_anyone_with_the_command(alice, bob, lobby, secret_room, tmp_path, capsys):
    conversation(alice, bob, lobby, secret_room)
    call_command("user", "export", "bob")
    printed = json.loads(capsys.readouterr().out)
    target = tmp_path / "bob.json"
    call_command("user", "export", "bob", "--output", str(target))
    written = json.loads(target.read_text())
    for data in (printed, written):
        assert [m["body"] for m in data["messages"]] == ["bob says hi", "bob whispers @alice"]
        assert data["profile"]["username"] == "bob"


@db
def test_a_long_history_is_streamed_in_pieces(alice, bob, lobby):
    from accounts.export import export_chunks

    Message.create_batch([Message(room=lobby, author=bob, body=f"m{i}") for i in range(1200)])
    pieces = list(export_chunks(bob))
    assert len(pieces) > 1200  # one piece a message, never the whole list at once
    assert max(len(p) for p in pieces) < 4000
    assert len(json.loads("".join(pieces))["messages"]) == 1200


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
@db
def test_the_export_streams_from_a_real_server(processes, bob, lobby, server):
    """Served for real, the document goes out in chunks (no Content-Length: it was not built
    in memory first) and is the whole of bob's history."""
    Message.create_batch([Message(room=lobby, author=bob, body=f"m{i}") for i in range(1200)])
    srv = processes.daphne(server=server)
    with processes.explain():
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.request("GET", "/account/export/", headers={"Cookie": session_cookie(bob)})
        response = conn.getresponse()
        body = response.read()
        conn.close()
    assert response.status == 200
    assert response.getheader("Content-Length") is None
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert len(json.loads(body)["messages"]) == 1200
