"""REST API helpers: clients authenticated with a real API token or a real session, and the one
assertion of the stable error shape ``{"code", "detail"[, "fields"]}``."""

from __future__ import annotations

from rest_framework.test import APIClient

from accounts.tokens import create_token

CSRF = "c" * 32  # a well-formed CSRF secret: the cookie and the header just have to agree


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def token_client(user, *, name: str = "tests", **kwargs) -> APIClient:
    """An APIClient that authenticates with a fresh API token of ``user`` (no cookie)."""
    _, raw = create_token(user=user, name=name)
    client = APIClient(**kwargs)
    client.credentials(**bearer(raw))
    client.raw_token = raw
    return client


def session_client(user, **kwargs) -> APIClient:
    """An APIClient logged in with a real session cookie (no token)."""
    client = APIClient(**kwargs)
    client.force_login(user)
    return client


def client_for(user, auth: str, **kwargs) -> APIClient:
    return token_client(user, **kwargs) if auth == "token" else session_client(user, **kwargs)


def assert_error(response, status: int, code: str) -> dict:
    """The response is a JSON error of the stable shape with this status and code."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) <= {"code", "detail", "fields"}, body
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"], body
    if "fields" in body:
        assert isinstance(body["fields"], dict) and body["fields"], body
        assert all(isinstance(v, list) for v in body["fields"].values()), body
    return body
