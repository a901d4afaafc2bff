"""The API describes itself: /api/schema/ (OpenAPI 3), /api/docs/ (Swagger UI served by the app
itself, no CDN) and /api/asyncapi.yaml (the WebSocket protocol, AsyncAPI 3)."""

from __future__ import annotations

import io
import json
import re

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from drf_spectacular.validation import validate_schema

from web.openapi import UNSAFE, status_of

EXPECTED_OPERATIONS = {
    ("/api/rooms/", "get"),
    ("/api/rooms/", "post"),
    ("/api/rooms/{slug}/", "get"),
    ("/api/rooms/{slug}/join/", "post"),
    ("/api/rooms/{slug}/leave/", "post"),
    ("/api/rooms/{slug}/members/", "get"),
    ("/api/rooms/{slug}/invite/", "post"),
    ("/api/rooms/{slug}/read/", "post"),
    ("/api/rooms/{slug}/messages/", "get"),
    ("/api/rooms/{slug}/messages/", "post"),
    ("/api/rooms/{slug}/messages/{seq}/", "patch"),
    ("/api/rooms/{slug}/messages/{seq}/", "delete"),
    ("/api/mentions/", "get"),
    ("/api/mentions/{id}/read/", "post"),
    ("/api/tokens/", "get"),
    ("/api/tokens/", "post"),
    ("/api/tokens/{id}/", "delete"),
    ("/api/analytics/summary/", "get"),
}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
def schema(db) -> dict:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_the_schema_is_served_as_yaml_by_default_and_parses(db):
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    assert "openapi" in response["Content-Type"]
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Parley API"


def test_the_schema_is_a_valid_openapi_3_document(schema):
    validate_schema(schema)  # drf-spectacular's JSON Schema of OpenAPI 3.0
    assert schema["openapi"].startswith("3.0")


def test_the_generator_validates_without_warnings(db):
    out = io.StringIO()
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out
    )
    generated = json.loads(out.getvalue())
    assert EXPECTED_OPERATIONS <= {(p, m) for p, m, _ in _operations(generated)}


def test_every_endpoint_is_described(schema):
    assert EXPECTED_OPERATIONS <= {(p, m) for p, m, _ in _operations(schema)}
    ids = [op["operationId"] for _, _, op in _operations(schema)]
    assert len(ids) == len(set(ids))
    # The schema does not describe itself, the docs or the AsyncAPI file.
    assert not [p for p in schema["paths"] if "schema" in p or "docs" in p or "asyncapi" in p]


def test_every_operation_needs_a_token_or_a_session(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerAuth"]["description"],
    }
    assert schemes["cookieAuth"]["in"] == "cookie"
    for path, method, operation in _operations(schema):
        assert operation["security"] == [{"bearerAuth": []}, {"cookieAuth": []}], (path, method)


def test_every_error_response_is_the_error_shape_with_its_codes(schema):
    for path, method, operation in _operations(schema):
        responses = operation["responses"]
        # Every endpoint can answer 401 (no or a bad token); writes 429 (the write throttle).
        assert "401" in responses, (path, method)
        assert ("429" in responses) == (method in UNSAFE), (path, method)
        for status, response in responses.items():
            if int(status) < 400:
                continue
            content = response["content"]["application/json"]["schema"]
            assert content["required"] == ["code", "detail"], (path, method, status)
            assert set(content["properties"]) == {"code", "detail", "fields"}
            codes = content["properties"]["code"]["enum"]
            assert codes and all(status_of(code) == int(status) for code in codes), codes


def test_documented_statuses_codes_and_headers_of_the_message_endpoints(schema):
    post = schema["paths"]["/api/rooms/{slug}/messages/"]["post"]
    responses = post["responses"]
    assert {"200", "201", "400", "401", "403", "404", "409", "413", "415", "429"} == set(responses)
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post["parameters"])

    def codes(status: str) -> set[str]:
        return set(
            responses[status]["content"]["application/json"]["schema"]["properties"]["code"]["enum"]
        )

    assert codes("409") == {"idempotency_key_reused"}
    assert codes("429") == {"rate_limited", "throttled"}
    assert {"body_required", "body_invalid", "invalid_idempotency_key"} <= codes("400")
    assert responses["200"]["headers"]["Idempotent-Replayed"]["required"] is True
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    for status in responses:
        assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
            responses[status]["headers"]
        ), status
    message = schema["components"]["schemas"]["Message"]["properties"]
    assert message["created_at"]["format"] == "date-time"
    assert "change" in message

    get = schema["paths"]["/api/rooms/{slug}/messages/"]["get"]
    params = {p["name"]: p for p in get["parameters"] if p["in"] == "query"}
    assert params["limit"]["schema"]["minimum"] == 1 and params["limit"]["schema"]["maximum"] == 200
    assert params["limit"]["schema"]["default"] == 50
    assert set(params) == {"after_seq", "before_seq", "limit"}
    assert "not with before_seq" in params["after_seq"]["description"].lower()
    assert "RateLimit-Limit" not in get["responses"]["200"].get("headers", {})  # reads: none
    page = schema["components"]["schemas"]["MessagePage"]["properties"]
    for cursor in ("next_after_seq", "prev_before_seq", "last_change"):
        assert page[cursor]["description"], cursor


def test_path_parameters_are_typed_and_descriptions_name_no_internals(schema):
    for path, method, operation in _operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] in ("id", "seq"):
                assert parameter["schema"]["type"] == "integer", (path, method, parameter)
    text = json.dumps(schema)
    for internal in ("chat.", "accounts.", "analytics.", "config.", "Serializer", "MessageData"):
        assert internal not in text, internal


def test_the_new_token_is_only_in_the_create_response(schema):
    components = schema["components"]["schemas"]
    assert "token" not in components["Token"]["properties"]
    assert "token" in components["NewToken"]["required"]
    create = schema["paths"]["/api/tokens/"]["post"]["responses"]["201"]
    assert create["content"]["application/json"]["schema"]["$ref"].endswith("/NewToken")


def test_the_schema_is_public_but_the_api_is_not(db):
    client = Client()
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/rooms/").status_code == 401


# --- /api/docs/ ----------------------------------------------------------------------------------
def test_the_docs_load_everything_from_this_app(db):
    client = Client()
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "swagger-ui" in page
    # No URL of another host anywhere in the page: no CDN, no fonts, no analytics.
    assert not re.search(r"(?i)https?:|//[a-z0-9.-]+\.[a-z]{2,}/", page), re.findall(
        r"(?i)https?://[^\s\"'<>]+", page
    )
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert len(assets) >= 4
    scripts = []
    for url in assets:
        # Static files, and Swagger UI's start-up script served by the docs view itself (no
        # inline script: web/middleware.py).
        assert url.startswith(("/static/", "/api/docs/?")), url
        asset = client.get(url.replace("&amp;", "&"))
        assert asset.status_code == 200, url
        content = b"".join(asset.streaming_content if asset.streaming else [asset.content])
        assert content
        if url.startswith("/api/docs/"):
            scripts.append(content.decode())
    (script,) = scripts
    # The page asks this app for the schema...
    assert '"/api/schema/"' in script
    # ...and turns off Swagger UI's online validator (a badge image from validator.swagger.io).
    settings = json.loads(re.search(r"const swaggerSettings = (\{.*?\});", script, re.S).group(1))
    assert "validatorUrl" in settings and settings["validatorUrl"] is None


# --- /api/asyncapi.yaml --------------------------------------------------------------------------
def test_the_asyncapi_document_is_served_and_describes_the_socket(db):
    response = Client().get("/api/asyncapi.yaml")

    assert response.status_code == 200
    document = yaml.safe_load(b"".join(response.streaming_content))
    assert str(document["asyncapi"]).startswith("3.")
    assert document["info"]["title"]
    room = document["channels"]["room"]
    assert room["address"] == "/ws/rooms/{slug}/"
    assert "messageSend" in room["messages"]
    text = json.dumps(document)
    for expected in ("message.new", "sync.done", "bearer.", "4401", "4403", "4404"):
        assert expected in text, expected
    # Every local reference resolves.
    for ref in re.findall(r'"\$ref": "#/([^"]+)"', text):
        node = document
        for part in ref.split("/"):
            node = node[part]
