"""A token's last_used_at is written at most once per token per interval
(``PARLEY["TOKEN_LAST_USED_EVERY_SECONDS"]``), however many sockets or requests use it at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ApiToken
from accounts.tokens import create_token, token_for

pytestmark = pytest.mark.django_db


def _writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]


def test_first_use_writes_once_then_not_within_the_interval(alice):
    token, raw = create_token(user=alice)
    with CaptureQueriesContext(connection) as first:
        assert token_for(raw) == token
    stamped = ApiToken.objects.get(pk=token.pk).last_used_at
    assert stamped is not None and len(_writes(first)) == 1

    with CaptureQueriesContext(connection) as again:
        for _ in range(20):  # a reconnect wave of one token's sockets
            assert token_for(raw) == token
    assert _writes(again) == []
    assert ApiToken.objects.get(pk=token.pk).last_used_at == stamped


def test_uses_that_read_the_same_old_value_write_once(alice):
    # Sockets of one token connecting at once all read the row before any of them wrote it.
    token, raw = create_token(user=alice)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(hours=1))
    with CaptureQueriesContext(connection) as queries:
        assert token_for(raw) == token
        ApiToken.objects.filter(pk=token.pk).update(  # as the others read it
            last_used_at=timezone.now() - timedelta(hours=1)
        )
        assert token_for(raw) == token
    assert len(_writes(queries)) == 2  # the first use's write and the test's own


def test_an_old_stamp_is_refreshed_and_the_interval_is_a_setting(alice, settings):
    token, raw = create_token(user=alice)
    old = timezone.now() - timedelta(seconds=30)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=old)
    token_for(raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == old  # within the minute

    settings.PARLEY = {**settings.PARLEY, "TOKEN_LAST_USED_EVERY_SECONDS": 10}
    token_for(raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > old
