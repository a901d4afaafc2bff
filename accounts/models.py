"""API tokens and per-user preferences (theme, avatar)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A named bearer token of a user. Only its SHA-256 digest is stored.

    Tokens are 256 random bits, so a fast hash is enough: there is nothing to brute-force that
    a slow password hash would protect.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    # The first characters of the token, to recognise it in lists.
    hint = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # After this moment the token authenticates nothing; null: it does not expire.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.user} {self.name} ({self.hint}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class Preference(models.Model):
    """A user's page preferences, kept on the server so they follow the user to any browser.
    No row: every default (the theme follows the system)."""

    THEMES = ("light", "dark")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    # "light" or "dark" as chosen with the header's toggle; "": follow prefers-color-scheme.
    theme = models.CharField(
        max_length=8, blank=True, default="", choices=[("", "system"), *((t, t) for t in THEMES)]
    )
    # The uploaded picture as re-encoded by accounts.avatars (a small PNG), or null: initials.
    avatar = models.BinaryField(null=True, blank=True, editable=False)
    # Changes with every upload, so pages can let browsers cache /avatars/<name>.png?v=N forever.
    avatar_version = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}: theme {self.theme or 'system'}"
