"""Production settings: everything secret or host-specific comes from the environment, and a
missing or unsafe value stops the process at start-up with one error naming the variable.

Required: ``SECRET_KEY`` (50+ characters, not a development or test default), ``DATABASE_URL``,
``REDIS_URL`` (the embedded Redis is never started here), ``ALLOWED_HOSTS``. The checks run
before ``base`` is imported, because importing it without ``REDIS_URL`` starts the embedded
Redis. Parley is meant to run behind a TLS-terminating proxy (README, "Production settings").
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

# Keys that ship in the repository (config/settings/local.py and test.py): public, never secret.
KNOWN_KEYS = frozenset({"parley-local-development-only-not-secret", "parley-test-only-not-secret"})
MIN_KEY_LENGTH = 50  # what `check --deploy` asks for (security.W009)


def _required(name: str, hint: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} must be set for config.settings.production: {hint}")
    return value


def _check_secret_key(key: str) -> str:
    if key in KNOWN_KEYS or key.startswith("django-insecure-"):
        raise ImproperlyConfigured(
            "SECRET_KEY is a development/test default, which is public: set a secret one"
        )
    if len(key) < MIN_KEY_LENGTH or len(set(key)) < 5:
        raise ImproperlyConfigured(
            f"SECRET_KEY must be at least {MIN_KEY_LENGTH} varied characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    return key


_check_secret_key(
    _required("SECRET_KEY", "python -c 'import secrets; print(secrets.token_urlsafe(50))'")
)
_required("DATABASE_URL", "e.g. postgres://parley:PASSWORD@db-host:5432/parley")
_required("REDIS_URL", "e.g. redis://redis-host:6379/0 (a Redis with AOF persistence)")
_required("ALLOWED_HOSTS", "the comma-separated host names the site is served as")

from .base import *  # noqa: E402, F403
from .base import BASE_DIR, env  # noqa: E402

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")

# --- HTTPS behind a TLS-terminating proxy ------------------------------------------------------
# The proxy (nginx) terminates TLS and forwards plain HTTP with X-Forwarded-Proto; it must set
# that header itself (overwriting any the client sent), or a client could claim HTTPS.
# TRUST_X_FORWARDED_PROTO=false when Django is reached without such a proxy.
if env.bool("TRUST_X_FORWARDED_PROTO", default=True):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Probes of a load balancer or Prometheus reach a process directly over plain HTTP: a redirect
# would fail them. Only these paths, whose answers are the same over either scheme.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# Origins that may POST besides the site itself (comma-separated, with scheme:
# https://chat.example.com); they are also accepted as WebSocket origins (realtime/origin.py).
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Static files: collected (`manage.py collectstatic`), hashed names, compressed -------------
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = False  # serve what collectstatic wrote, not the source folders
WHITENOISE_AUTOREFRESH = False
