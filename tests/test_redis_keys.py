"""Every Redis key Parley touches carries the configured prefix, and each script's keys share
one Cluster hash slot (contract/redis_keys.py).

Checked from Redis' side: MONITOR records every command (those run inside Lua scripts too)
while a realistic flow runs against the embedded Redis with a non-default prefix; Redis' own
``COMMAND GETKEYS`` says which arguments are keys.
"""

from __future__ import annotations

import codecs
import json
import re
import threading
import uuid
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from django.core.exceptions import ImproperlyConfigured
from redis.cluster import key_slot
from redis.exceptions import ResponseError

from broker import groups, loss, registry
from broker.worker import Worker
from chat import actions, arrival, limits, online, relay
from chat.models import Message
from contract import events, redis_keys
from infra.redis_client import get_redis
from ops import health
from tests.test_production_settings import DOCUMENTED, _run

PREFIX = "acme"
_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')


class Monitor:
    """Every command Redis runs between ``start`` and ``stop``, as lists of raw arguments."""

    def __init__(self) -> None:
        self.commands: list[list[bytes]] = []
        self.marker = f"monitor-end-{uuid.uuid4().hex}".encode()
        self.monitor = get_redis().monitor()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> Monitor:
        self.monitor.__enter__()  # sends MONITOR and waits for its OK
        self.thread.start()
        return self

    def _read(self) -> None:
        while True:
            line = self.monitor.connection.read_response()
            _, _, rest = line.partition(b"] ")
            args = [codecs.escape_decode(a)[0] for a in _ARG.findall(rest)]
            if args[:2] == [b"ECHO", self.marker]:
                return
            self.commands.append(args)

    def stop(self) -> list[list[bytes]]:
        get_redis().echo(self.marker)  # the reader stops when Redis reports this command
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "MONITOR never showed the end marker"
        self.monitor.__exit__()
        return self.commands


def keys_of(args: list[bytes]) -> list[str]:
    try:
        keys = get_redis().command_getkeys(*args)
    except ResponseError:  # "The command has no key arguments"
        return []
    return [k.decode() if isinstance(k, bytes) else k for k in keys]


@pytest.fixture
def acme(settings):
    """Parley configured as a second deployment on a shared Redis; its keys removed after."""
    settings.PARLEY_REDIS_PREFIX = PREFIX
    settings.PARLEY_STREAM_PREFIX = redis_keys.default_stream_prefix(PREFIX)
    yield
    client = get_redis()
    leftovers = list(client.scan_iter(f"{PREFIX}:*"))
    if leftovers:
        client.delete(*leftovers)


def post_edit_and_consume(lobby, alice, bob) -> None:
    """Posts (rate limit, relay script), an edit, a worker batch of three topics with a
    malformed entry (dead letter), the relay's heartbeat and marker."""
    sub = registry.get("analytics")
    groups.ensure_groups(get_redis(), [sub])
    posted = actions.post_message(author=alice, room=lobby, body="hi @bob").message
    actions.edit_message(user=alice, message=Message.objects.get(pk=posted.pk), body="hello @bob")
    get_redis().xadd(events.stream_key(events.TOPIC_MESSAGE), {"junk": "x"})
    relay.flush_pending()
    health.relay_heartbeat(get_redis())
    loss.new_marker(get_redis())
    Worker(sub, stop=threading.Event()).step()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_every_key_has_the_prefix_and_each_script_one_slot(acme, lobby, alice, bob):
    monitor = Monitor().start()
    await database_sync_to_async(post_edit_and_consume)(lobby, alice, bob)
    socket = SimpleNamespace(scope={"user": bob})
    assert await limits.admit_socket(socket)
    await online.enter(lobby.pk, "bob", "s1", listening=True)
    await online.refresher().refresh()
    await online.leave(lobby.pk, "bob", "s1")
    await limits.release_socket(socket)
    room_socket = SimpleNamespace(scope={"user": bob})  # a room socket: one script for both
    assert await arrival.arrive(room_socket, room=lobby, session="s2")
    await arrival.depart(room_socket, room=lobby, session="s2")
    commands = await database_sync_to_async(monitor.stop)()

    touched: set[str] = set()
    scripts: list[list[str]] = []
    for args in commands:
        keys = keys_of(args)
        touched.update(keys)
        if args[0].upper() in (b"EVAL", b"EVALSHA") and keys:
            scripts.append(keys)
    strays = sorted(k for k in touched if not k.startswith(f"{PREFIX}:"))
    assert not strays, f"keys without the prefix {PREFIX!r}: {strays}"
    for keys in scripts:
        assert len({key_slot(k.encode()) for k in keys}) == 1, f"one script, several slots: {keys}"

    # The flow reached what it claims to cover (the check above is not vacuous).
    stream = f"{PREFIX}:chat.message"
    expected = {
        stream,
        f"{PREFIX}:{{{stream}}}:published-change",
        f"{PREFIX}:{{{PREFIX}:sockets:{bob.pk}}}:presence:{lobby.pk}:sockets",
        f"{PREFIX}:{{{PREFIX}:sockets:{bob.pk}}}:presence:{lobby.pk}:session",
        f"{PREFIX}:sockets:{bob.pk}",
        f"{PREFIX}:online:{lobby.pk}",
        f"{PREFIX}:dead:analytics",
        f"{PREFIX}:workers:seen",
        f"{PREFIX}:relay:heartbeat",
        f"{PREFIX}:redis-marker",
        f"{PREFIX}:chat.room",
        f"{PREFIX}:chat.presence",
    }
    assert expected <= touched, expected - touched
    assert any(k.startswith(f"{PREFIX}:rate:") for k in touched)
    assert len(scripts) >= 5  # relay publishes, socket admission (alone, with presence), close


def test_default_prefix_keeps_todays_names():
    assert redis_keys.default_stream_prefix(redis_keys.DEFAULT_PREFIX) == ""
    assert redis_keys.default_stream_prefix("acme") == "acme:"


@pytest.mark.parametrize("value", ["", "a{b}", "has space", "star*"])
def test_unusable_prefixes_are_refused(value):
    with pytest.raises(ImproperlyConfigured):
        redis_keys.check_prefix(value, name="PARLEY_REDIS_PREFIX")


_SHOW = (
    "import json; from config.settings import production as s; print(json.dumps([s.PARLEY_REDIS"
    "_PREFIX, s.PARLEY_STREAM_PREFIX, s.CHANNEL_LAYERS['default']['CONFIG']['prefix']]))"
)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, ["parley", "", "parley"]),  # today's names
        ({"PARLEY_REDIS_PREFIX": "acme"}, ["acme", "acme:", "acme"]),
        ({"PARLEY_REDIS_PREFIX": "acme", "PARLEY_STREAM_PREFIX": ""}, ["acme", "", "acme"]),
    ],
)
def test_the_streams_and_the_channel_layer_follow_the_prefix(env, names, tmp_path):
    result = _run(["-c", _SHOW], {**DOCUMENTED, **env}, tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == names


@pytest.mark.parametrize("variable", ["PARLEY_REDIS_PREFIX", "PARLEY_STREAM_PREFIX"])
def test_a_deployment_with_an_unusable_prefix_does_not_start(variable, tmp_path):
    result = _run(["-c", _SHOW], {**DOCUMENTED, variable: "{acme}"}, tmp_path)

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"django.core.exceptions.ImproperlyConfigured: {variable}="), last
