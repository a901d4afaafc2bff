"""Token actions: create, revoke, and resolve a presented token to its user."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken

PREFIX = "plt_"
# last_used_at is refreshed at most this often (one write per token per minute, not per call).
_TOUCH_EVERY = timedelta(minutes=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(*, user: AbstractBaseUser, name: str = "default") -> tuple[ApiToken, str]:
    """Create a token; returns the row and the token itself, which is shown only this once."""
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name[:100] or "default", digest=_digest(raw), hint=raw[:8]
    )
    return token, raw


def revoke_token(*, token_id: int, user: AbstractBaseUser | None = None) -> bool:
    """Revoke a token (of ``user`` only, when given); False if there is no such active token."""
    tokens = ApiToken.objects.filter(pk=token_id, revoked_at__isnull=True)
    if user is not None:
        tokens = tokens.filter(user=user)
    with transaction.atomic():
        token = tokens.select_for_update().first()
        if token is None:
            return False
        token.revoked_at = timezone.now()
        # save(), not update(): its post_save records access.revoked (chat.access), so the
        # token's open sockets close.
        token.save(update_fields=["revoked_at"])
    return True


def user_for_token(raw: str) -> AbstractBaseUser | None:
    """The active user a presented token belongs to, or None."""
    token = token_for(raw)
    return None if token is None else token.user


def token_for(raw: str) -> ApiToken | None:
    """The active token ``raw`` is (its user active too, loaded with it), or None."""
    if not raw.startswith(PREFIX) or len(raw) > 100:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=_digest(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
