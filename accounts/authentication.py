"""``Authorization: Bearer <token>`` for the REST API (DRF) and the WebSocket (see
realtime/application.py, which authenticates a handshake with ``token_in``)."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from accounts.tokens import user_for_token

# A WebSocket client that cannot set headers (a browser) may offer the token as a subprotocol
# "bearer.<token>" beside "parley"; the server then selects "parley", never echoing the token.
SUBPROTOCOL = "parley"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."  # noqa: S105 - a protocol name, not a secret


def bearer_from_header(value: str) -> str | None:
    scheme, _, raw = value.partition(" ")
    return raw.strip() if scheme.lower() == "bearer" and raw.strip() else None


class BearerTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        raw = bearer_from_header(header)
        if raw is None:
            return None
        user = user_for_token(raw)
        if user is None:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked token")
        return user, raw

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


def token_in(scope) -> str | None:
    """The bearer token a WebSocket handshake presents (header first, then subprotocol)."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return bearer_from_header(value.decode("latin-1"))
    for protocol in scope.get("subprotocols", []):
        if protocol.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return protocol[len(TOKEN_SUBPROTOCOL_PREFIX) :]
    return None
