"""Token actions: create, revoke, and resolve a presented token to its user (and note when it
was last used: at most once per token per ``PARLEY["TOKEN_LAST_USED_EVERY_SECONDS"]``)."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiToken

PREFIX = "plt_"
# Tokens (by digest) this process wrote last_used_at of, and when (time.monotonic()).
_touched: dict[str, float] = {}


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
    or None."""
    if not raw.startswith(PREFIX) or len(raw) > 100:
        return None
    now = timezone.now()
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=_digest(raw), revoked_at__isnull=True, user__is_active=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if token is None:
        return None
    _touch(token, now)
    return token


def _touch(token: ApiToken, now: datetime) -> None:
    """Set the token's ``last_used_at`` to ``now`` unless it was set within the setting's
    interval: by its row as read, by this process (sockets of one token connecting at once read
    the same old value), or by another process (the UPDATE's condition). A reconnect wave of a
    token's sockets writes once, not once per socket."""
    every = settings.PARLEY["TOKEN_LAST_USED_EVERY_SECONDS"]
    stale = now - timedelta(seconds=every)
    if token.last_used_at is not None and token.last_used_at > stale:
        return
    clock = time.monotonic()
    written = _touched.get(token.digest)
    if written is not None and clock - written < every:
        return
    if len(_touched) > 10_000:  # forget what is past its interval anyway
        for digest in [d for d, at in _touched.items() if clock - at >= every]:
            del _touched[digest]
    _touched[token.digest] = clock
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale)
    ).update(last_used_at=now)
