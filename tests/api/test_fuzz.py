"""Property-based fuzzing of the whole REST API from its own OpenAPI schema (schemathesis).

Each operation gets generated requests that fit the schema (positive) and that do not
(negative), sent in-process through Django's real WSGI handler with a Bearer token of alice, who
owns a public and a private room, is in a mention and can call everything (she is staff). Path
parameters are sometimes pinned to things that exist (her rooms, a room she is not in, her
token, her mention, someone else's) so the fuzzing reaches past "404".

Checks: no 5xx for any input; the status code, content type, headers and body of every
response are the ones the schema documents. Every example runs in a savepoint that is rolled
back, so each starts from the same data (a fuzzed DELETE of alice's own token does not lock the
rest out).
"""

from __future__ import annotations

import io
import json
import sys

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.tokens import create_token
from chat import actions
from chat.models import Mention, Room
from config.settings.base import PARLEY

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 25


def _openapi() -> dict:
    """The schema the app serves at /api/schema/ (test_schema checks they are the same)."""
    out = io.StringIO()
    call_command("spectacular", "--format", "openapi-json", stdout=out)
    return json.loads(out.getvalue())


SCHEMA = schemathesis.openapi.from_dict(_openapi())
OPERATIONS = sorted((op.ok().method.upper(), op.ok().path) for op in SCHEMA.get_all_operations())
APP = WSGIHandler()


@pytest.fixture
def world(alice, bob, lobby, secret_room):
    """alice (staff, owner of lobby and secret) and her token; bob with a token and a mention."""
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    Room.objects.create(slug="elsewhere", title="Elsewhere", is_private=True)  # alice not in it
    for n in range(3):
        actions.post_message(author=bob, room=lobby, body=f"hello @alice {n}")
    message = actions.post_message(author=alice, room=secret_room, body="@bob psst").message
    alice_token, raw = create_token(user=alice, name="fuzz")
    bob_token, _ = create_token(user=bob, name="bob")
    alice_mention = Mention.objects.create(user=alice, message=lobby.messages.first())
    bob_mention = Mention.objects.create(user=bob, message=message)
    return {
        "headers": {"Authorization": f"Bearer {raw}"},
        "slug": ["lobby", "secret", "elsewhere", "nowhere"],
        "id": [alice_token.pk, alice_mention.pk, bob_token.pk, bob_mention.pk, 0],
        "seq": [1, 3, 4, 0],  # lobby: 1-3 are bob's, 4 is none; secret: 1 is alice's
    }


@pytest.fixture
def in_process():
    """Requests are handled in this thread, inside the test's transaction: keep Django from
    closing the connection at each request (as its test Client does), no rate limits get in the
    way of the fuzzing, and any unhandled exception is kept for the failure report."""
    errors: list[BaseException] = []

    def record(sender, request=None, **kwargs) -> None:
        errors.append(sys.exc_info()[1])

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    got_request_exception.connect(record)
    try:
        with override_settings(
            PARLEY={**PARLEY, "RATE_LIMIT_MESSAGES": 10**6, "API_WRITES_PER_MINUTE": 10**6}
        ):
            yield errors
    finally:
        got_request_exception.disconnect(record)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _strategy(operation, mode: GenerationMode, world: dict):
    """Generated cases; where the path has a slug, an id or a seq, also some with a real one."""
    strategies = [operation.as_strategy(generation_mode=mode)]
    for name in ("slug", "id", "seq"):
        if any(p.name == name for p in operation.path_parameters):
            strategies += [
                operation.as_strategy(generation_mode=mode, path_parameters={name: value})
                for value in world[name]
            ]
    return st.one_of(strategies)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_the_api_answers_every_request_as_its_schema_says(method, path, mode, world, in_process):
    operation = SCHEMA[path][method]

    @given(case=_strategy(operation, mode, world))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        with transaction.atomic():
            in_process.clear()
            try:
                case.call_and_validate(app=APP, headers=world["headers"], checks=CHECKS)
            except BaseException as exc:
                for error in in_process:
                    exc.add_note(f"server exception: {error!r}")
                raise
            finally:
                transaction.set_rollback(True)

    run()


def test_the_fuzzed_schema_is_the_served_one(db):
    served = Client().get("/api/schema/", {"format": "json"}).json()
    assert served == _openapi()
