"""Failed logins are throttled per account and per client address (django-axes, settings in
config/settings/base.py), on the login page and the admin's; sign-ups per address."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

LIMIT = settings.AXES_FAILURE_LIMIT


def _login(address: str, username: str, password: str, path: str = "/accounts/login/"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(path, {"username": username, "password": password})
    return response, "sessionid" in client.cookies


def test_200_wrong_passwords_lock_the_account_until_the_cool_off(alice, bob):
    statuses = [_login("10.0.0.1", "bob", "wrong")[0].status_code for _ in range(200)]
    assert statuses[: LIMIT - 1] == [200] * (LIMIT - 1)  # the form, with its error
    assert set(statuses[LIMIT - 1 :]) == {429}
    response, logged_in = _login("10.0.0.1", "bob", "pw-bob")
    assert response.status_code == 429 and not logged_in
    assert b"Too many failed logins" in response.content
    # The account is locked from any address; the address for any account.
    assert _login("10.0.0.2", "bob", "pw-bob")[0].status_code == 429
    assert _login("10.0.0.1", "alice", "pw-alice")[0].status_code == 429
    # Other people elsewhere are unaffected.
    response, logged_in = _login("10.0.0.2", "alice", "pw-alice")
    assert response.status_code == 302 and logged_in
    # Once the cool-off has passed (the attempts made that long ago), bob gets in again.
    AccessAttempt.objects.update(attempt_time=_ago(settings.AXES_COOLOFF_TIME))
    response, logged_in = _login("10.0.0.1", "bob", "pw-bob")
    assert response.status_code == 302 and logged_in


def _ago(delta):
    return timezone.now() - delta - delta / 10


def test_many_accounts_from_one_address_lock_the_address(alice, bob):
    for i in range(LIMIT):
        _login("10.0.0.3", f"guess-{i}", "wrong")
    assert _login("10.0.0.3", "bob", "pw-bob")[0].status_code == 429
    assert _login("10.0.0.4", "bob", "pw-bob")[0].status_code == 302


def test_the_admin_login_is_throttled_too(db):
    get_user_model().objects.create_user("ops", password="pw-ops", is_staff=True)
    statuses = [
        _login("10.0.0.5", "ops", "wrong", "/admin/login/?next=/admin/")[0].status_code
        for _ in range(LIMIT + 5)
    ]
    assert statuses[-5:] == [429] * 5
    response, logged_in = _login("10.0.0.5", "ops", "pw-ops", "/admin/login/?next=/admin/")
    assert response.status_code == 429 and not logged_in


def test_signups_per_address_are_limited(settings):
    settings.PARLEY = {**settings.PARLEY, "SIGNUPS_PER_HOUR": 3}

    def signup(name: str, address: str):
        form = {"username": name, "password1": "a-long-pass-1", "password2": "a-long-pass-1"}
        return Client(REMOTE_ADDR=address).post("/accounts/signup/", form)

    assert [signup(f"new-{i}", "10.0.1.1").status_code for i in range(3)] == [302] * 3
    refused = signup("new-3", "10.0.1.1")
    assert refused.status_code == 429 and refused["Retry-After"] == "3600"
    assert not get_user_model().objects.filter(username="new-3").exists()
    assert signup("new-4", "10.0.1.2").status_code == 302  # another address
