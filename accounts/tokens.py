"""Token actions: create, revoke, and resolve a presented token to its user (noting the use:
accounts.last_used writes last_used_at in batches)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts import last_used
from accounts.models import ApiToken
from database.joined import joined_row

PREFIX = "plt_"


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# The longest lifetime a token may be given (about ten years); a longer one is a mistake.
MAX_LIFETIME = timedelta(days=3660)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_lifetime(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``3600s`` or plain seconds; ValueError otherwise
    (nothing, zero, negative, or over MAX_LIFETIME)."""
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    if not (number.isascii() and number.isdigit()) or len(number) > 12:
        raise ValueError(f"not a lifetime: {text!r} (e.g. 30d, 12h, 90m)")
    lifetime = timedelta(seconds=int(number) * _UNITS[unit])
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise ValueError(f"a lifetime must be more than 0 and at most {MAX_LIFETIME.days} days")
    return lifetime


def create_token(
    *, user: AbstractBaseUser, name: str = "default", expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token (expiring at ``expires_at``, if given); returns the row and the token
    itself, which is shown only this once."""
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name[:100] or "default",
        digest=_digest(raw),
        hint=raw[:8],
        expires_at=expires_at,
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
    """The active user a presented token belongs to, or None (unknown, revoked or expired
    token, or an inactive user)."""
    token = token_for(raw)
    return None if token is None else token.user


def token_for(raw: str) -> ApiToken | None:
    """The active token ``raw`` is (not revoked nor expired, its user active, loaded with it),
    or None. Its use is noted for ``last_used_at`` (accounts.last_used: written in batches)."""
    if not raw.startswith(PREFIX) or len(raw) > 100:
        return None
    # One read by the unique digest, token and user (written by hand: the ORM spent several
    # times the query's CPU building it); what makes a token inactive is checked here.
    token = joined_row(ApiToken, "user", "digest", _digest(raw))
    if token is None:
        return None
    now = timezone.now()
    if token.revoked_at is not None or not token.user.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    last_used.note(token, now)
    return token
