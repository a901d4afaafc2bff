"""config.settings.production: refuses to start without what production needs (one clear error
naming the variable, and no embedded Redis started), and passes ``check --deploy`` with the
environment the README documents. Each case runs in a fresh interpreter, as a deployment would."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# README, "Production settings": the documented environment (no server is contacted by these).
DOCUMENTED = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "postgres://parley:secret@db.internal:5432/parley",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "ALLOWED_HOSTS": "chat.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
}


def _run(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run with only ``env`` (plus PATH) set; the embedded Redis, were it started, would put its
    socket in tmp_path/redis."""
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir(exist_ok=True)
    full = {"PATH": os.environ["PATH"], "PARLEY_EMBEDDED_REDIS_DIR": str(redis_dir), **env}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=50
    )


def _import_settings(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return _run(["-c", "import config.settings.production"], env, tmp_path)


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"])
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_refuses_to_start_without_a_required_variable(missing, how, tmp_path):
    env = {k: v for k, v in DOCUMENTED.items() if k != missing}
    if how == "empty":
        env[missing] = "  "
    result = _import_settings(env, tmp_path)

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: " + missing), last
    assert list((tmp_path / "redis").iterdir()) == []  # no embedded Redis was started


@pytest.mark.parametrize(
    "key",
    [
        "parley-local-development-only-not-secret",  # config/settings/local.py
        "parley-test-only-not-secret",  # config/settings/test.py
        "django-insecure-" + "x1y2z3" * 10,  # startproject's kind
        "short-but-random-" + secrets.token_hex(8),
    ],
)
def test_refuses_a_public_or_weak_secret_key(key, tmp_path):
    result = _import_settings({**DOCUMENTED, "SECRET_KEY": key}, tmp_path)

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY" in result.stderr.strip().splitlines()[-1]


def test_check_deploy_is_clean_with_the_documented_environment(tmp_path):
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], DOCUMENTED, tmp_path
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    assert list((tmp_path / "redis").iterdir()) == []


def test_https_settings_and_the_policy(tmp_path):
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.DEBUG, s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.CSRF_TRUSTED_ORIGINS, s.PARLEY_CSP]))"
    )
    result = _run(["-c", code], DOCUMENTED, tmp_path)

    assert result.returncode == 0, result.stderr
    debug, proxy, redirect, hsts, session, csrf, trusted, csp = json.loads(result.stdout)
    assert debug is False
    assert proxy == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert redirect is True and hsts >= 31536000 and session is True and csrf is True
    assert trusted == ["https://chat.example.com"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"  # no inline script, no eval, no other host


def test_collectstatic_writes_hashed_names_that_pages_use(tmp_path):
    env = {**DOCUMENTED, "STATIC_ROOT": str(tmp_path / "static")}
    collected = _run(["manage.py", "collectstatic", "--noinput", "-v0"], env, tmp_path)
    assert collected.returncode == 0, collected.stderr

    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["parley/room.js"]
    assert hashed != "parley/room.js" and hashed.startswith("parley/room.")
    assert (tmp_path / "static" / hashed).exists()
    code = (
        "import django; django.setup(); from django.templatetags.static import static; "
        "print(static('parley/room.js'))"
    )
    url = _run(["-c", code], env, tmp_path)
    assert url.stdout.strip() == "/static/" + hashed, url.stderr
