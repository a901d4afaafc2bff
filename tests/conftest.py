"""Shared fixtures: named users, rooms made through the real actions, Redis hygiene, and the
events the write path published (read back from the real stream and checked against the schema).
"""

from __future__ import annotations

import contextlib

import pytest
import pytest_asyncio
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.last_used import discard_pending_last_used
from chat import actions, replaypages
from infra.embedded_redis import RedisServer
from infra.redis_client import get_redis
from tests.support import contract, ws
from tests.support.events import published_events
from tests.support.procs import Processes
from tests.support.ws import session_cookie


@pytest.fixture(autouse=True, scope="session")
def _api_contract():
    """Every /api/ response any test gets through Django's test client is checked against the
    OpenAPI document (tests.support.contract): an undocumented status, field or header fails
    the test that received it."""
    original = Client.request

    def request(self, **kwargs):
        response = original(self, **kwargs)
        environ = response.request
        contract.check_response(environ["REQUEST_METHOD"], environ["PATH_INFO"], response)
        return response

    Client.request = request
    yield
    Client.request = original


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with no Parley keys (streams, publish guard, rate counters)."""
    _delete_parley_keys()
    yield
    _delete_parley_keys()


def _delete_parley_keys() -> None:
    client = get_redis()
    keys = [*client.scan_iter("parley:*"), *client.scan_iter("chat.*")]
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _replay_pages():
    """No test reads another's replay pages (a rolled-back room's id is used again)."""
    replaypages.clear()
    yield
    replaypages.clear()


@pytest.fixture(autouse=True)
def _token_uses():
    """A test's token uses not written by its own flush_last_used() are forgotten after it."""
    yield
    discard_pending_last_used()


def _user(username: str):
    return get_user_model().objects.create_user(username, password=f"pw-{username}")


@pytest.fixture
def alice(db):
    return _user("alice")


@pytest.fixture
def bob(db):
    return _user("bob")


@pytest.fixture
def mallory(db):
    """A logged-in user who belongs to no private room."""
    return _user("mallory")


@pytest.fixture
def lobby(alice, bob):
    """Public room owned by alice; bob is a member."""
    room = actions.create_room(creator=alice, slug="lobby", title="Lobby")
    actions.join_room(user=bob, room=room)
    return room


@pytest.fixture
def secret_room(alice, bob):
    """Private room of alice and bob."""
    room = actions.create_room(creator=alice, slug="secret", title="Secret", is_private=True)
    room.memberships.create(user=bob)
    return room


@pytest.fixture
def stream_events():
    """Callable returning the events on the ``chat.message`` stream, schema-checked."""
    return published_events


@pytest.fixture
def processes(tmp_path):
    """Real server and worker processes for one test, all stopped at its end."""
    processes = Processes(tmp_path)
    yield processes
    processes.stop_all()


@pytest.fixture
def private_redis():
    """A Redis of the test's own, to stop, kill or restart (never the shared one)."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def cookies(lobby, alice, bob):
    """Session cookies of alice and bob, both members of the lobby."""
    return {"alice": session_cookie(alice), "bob": session_cookie(bob)}


@pytest_asyncio.fixture
async def disconnect_leftover_sockets(monkeypatch):
    """Every test disconnects its sockets; this closes those a failing test left open, so no
    consumer task or subscription outlives its test."""
    opened: list[WebsocketCommunicator] = []

    class TrackedCommunicator(WebsocketCommunicator):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(ws, "WebsocketCommunicator", TrackedCommunicator)
    yield
    for comm in opened:
        if not comm.future.done():
            with contextlib.suppress(Exception):
                await comm.disconnect()
