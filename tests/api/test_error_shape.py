"""Every response under /api/ is JSON in the documented error shape — also for paths no route
matches, methods a view refuses and server errors, with DEBUG on and off (Django's HTML and its
debug page never reach an API client)."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from django.urls import path

from config.urls import urlpatterns as project_urls
from tests.support.api import assert_error, token_client

NO_ROUTE = [
    "/api/rooms//messages/0/",
    "/api/rooms/lob%20by/",
    "/api/rooms/lob.by/messages/",
    "/api/rooms/%C3%A9t%C3%A9/",
    "/api/rooms/lobby/messages/abc/",
    "/api/tokens/abc/",
    "/api/nothing-here/",
    "/api/",
]


def _boom(request):
    raise RuntimeError("a bug")


# The project's URLs plus one view that fails, to see what a server error looks like.
urlpatterns = [path("api/test-boom/", _boom), *project_urls]


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.mark.parametrize("url", NO_ROUTE)
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_a_path_no_route_matches_is_a_json_404(debug, alice, lobby, url, method):
    response = getattr(token_client(alice), method)(url)
    body = assert_error(response, 404, "not_found")
    assert body["detail"] == "no such endpoint"
    assert b"<html" not in response.content.lower()
    # The headers of every response stay.
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("put", "/api/rooms/lobby/messages/"),
        ("delete", "/api/rooms/"),
        ("post", "/api/mentions/"),
        ("patch", "/api/tokens/"),
        ("post", "/api/schema/"),
        ("post", "/api/asyncapi.yaml"),
    ],
)
def test_a_refused_method_is_a_json_405(debug, alice, lobby, method, url):
    response = getattr(token_client(alice), method)(url, {}, format="json")
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"]


@override_settings(ROOT_URLCONF=__name__)
def test_a_server_error_is_json_too(debug, alice, caplog):
    client = token_client(alice, raise_request_exception=False)
    response = client.get("/api/test-boom/")
    body = assert_error(response, 500, "server_error")
    assert "a bug" not in body["detail"]  # nothing of the exception leaks, even in DEBUG
    assert any("a bug" in str(r.exc_info) for r in caplog.records if r.exc_info)  # logged


def test_pages_outside_the_api_keep_django_s_pages(debug, alice):
    client = Client()
    client.force_login(alice)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
