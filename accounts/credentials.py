"""What a WebSocket authenticated with, and whether that still holds.

A socket keeps its credential — ``("token", <ApiToken id>)`` or ``("session", <session key>)``
— in its scope (realtime/application.py). When access changes (chat.access), the socket asks
``credential_valid`` again instead of trusting what was true at its handshake. Events name a
credential by ``credential_name``: a token by its id, a session by a digest of its key, so the
key itself never leaves the process (events are kept on a Redis stream).
"""

from __future__ import annotations

import hashlib
from importlib import import_module
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import get_user
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiToken

Credential = tuple[str, object]  # ("token", id) | ("session", key)


def credential_name(credential: Credential | None) -> str | None:
    """How access.revoked events name ``credential`` (None for None)."""
    if credential is None:
        return None
    kind, value = credential
    if kind == "session":
        return "session:" + session_digest(str(value))
    return f"{kind}:{value}"


def session_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def credential_valid(*, user_id: int, credential: Credential | None) -> bool:
    """True while ``credential`` still authenticates the active user ``user_id``: the token is
    not revoked (nor its user deactivated or deleted), or the session exists, belongs to the
    user and was not invalidated by a password change (Django's session auth hash)."""
    if credential is None:
        return False
    kind, value = credential
    if kind == "token":
        return (
            ApiToken.objects.filter(
                pk=value, user_id=user_id, revoked_at__isnull=True, user__is_active=True
            )
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
            .exists()
        )
    if kind == "session":
        store = import_module(settings.SESSION_ENGINE).SessionStore(str(value))
        user = get_user(SimpleNamespace(session=store))
        return user.is_authenticated and user.pk == user_id and user.is_active
    return False
