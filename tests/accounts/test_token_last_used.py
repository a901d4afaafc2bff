"""A token's last_used_at: noted by each lookup, written in batches (accounts.last_used) at most
once per token per interval (``PARLEY["TOKEN_LAST_USED_EVERY_SECONDS"]``), however many sockets,
requests, threads or processes use it at once."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.last_used import flush_last_used
from accounts.models import ApiToken
from accounts.tokens import create_token, revoke_token, token_for
from tests.support.ws import open_path

pytestmark = pytest.mark.django_db


def _writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]


def _stamp(token: ApiToken):
    return ApiToken.objects.get(pk=token.pk).last_used_at


def test_a_lookup_writes_nothing_and_the_flush_writes_once(alice):
    token, raw = create_token(user=alice)
    with CaptureQueriesContext(connection) as lookups:
        for _ in range(20):  # a reconnect wave of one token's sockets
            assert token_for(raw) == token
    assert _writes(lookups) == [] and _stamp(token) is None

    with CaptureQueriesContext(connection) as flush:
        assert flush_last_used() == 1
    stamped = _stamp(token)
    assert stamped is not None and len(_writes(flush)) == 1

    with CaptureQueriesContext(connection) as again:
        assert token_for(raw) == token
        assert flush_last_used() == 0
    assert _writes(again) == [] and _stamp(token) == stamped


def test_uses_that_read_the_same_old_value_write_once(alice):
    # Sockets of one token connecting at once all read the row before any flush wrote it.
    token, raw = create_token(user=alice)
    old = timezone.now() - timedelta(hours=1)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=old)
    assert token_for(raw) == token
    assert flush_last_used() == 1
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=old)  # as the others read it
    assert token_for(raw) == token
    assert flush_last_used() == 0
    assert _stamp(token) == old


def test_another_process_stamp_within_the_interval_is_kept(alice):
    token, raw = create_token(user=alice)
    assert token_for(raw) == token  # noted here while the row is unstamped...
    theirs = timezone.now() - timedelta(seconds=5)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=theirs)  # ...another process wrote
    assert flush_last_used() == 0
    assert _stamp(token) == theirs


def test_an_old_stamp_is_refreshed_and_the_interval_is_a_setting(alice, settings):
    token, raw = create_token(user=alice)
    old = timezone.now() - timedelta(seconds=30)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=old)
    token_for(raw)
    flush_last_used()
    assert _stamp(token) == old  # within the minute

    settings.PARLEY = {**settings.PARLEY, "TOKEN_LAST_USED_EVERY_SECONDS": 10}
    token_for(raw)
    assert flush_last_used() == 1
    assert _stamp(token) > old


def test_a_revoked_or_deleted_token_is_not_brought_back(alice):
    token, raw = create_token(user=alice)
    gone, gone_raw = create_token(user=alice, name="gone")
    assert token_for(raw) == token and token_for(gone_raw) == gone
    assert revoke_token(token_id=token.pk)
    before = ApiToken.objects.values().get(pk=token.pk)
    gone.delete()

    assert flush_last_used() == 1
    after = ApiToken.objects.values().get(pk=token.pk)
    assert after.pop("last_used_at") is not None
    assert before.pop("last_used_at") is None and after == before  # still revoked
    assert token_for(raw) is None
    assert not ApiToken.objects.filter(pk=gone.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_fifty_fresh_tokens_used_from_threads_take_one_update(alice):
    tokens = [create_token(user=alice, name=f"t{i}") for i in range(50)]
    updates = []

    def count(execute, sql, params, many, context):
        if sql.startswith("UPDATE"):
            updates.append(sql)
        return execute(sql, params, many, context)

    def look_up(raw: str) -> bool:
        try:
            with connection.execute_wrapper(count):  # this thread's own connection
                return token_for(raw) is not None
        finally:
            connection.close()

    raws = [raw for _, raw in tokens] * 4  # 200 lookups
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(look_up, raws))
    assert updates == []

    with connection.execute_wrapper(count):
        assert flush_last_used() == 50
    assert len(updates) == 1
    stamped = ApiToken.objects.filter(pk__in=[t.pk for t, _ in tokens], last_used_at__isnull=False)
    assert stamped.count() == 50


@pytest.mark.django_db(transaction=True)
def test_the_timer_flushes_without_a_call(alice, settings):
    settings.PARLEY = {**settings.PARLEY, "TOKEN_LAST_USED_FLUSH_SECONDS": 0.05}
    token, raw = create_token(user=alice)
    assert token_for(raw) == token
    timers = [t for t in threading.enumerate() if t.name == "parley-token-last-used"]
    assert len(timers) == 1
    timers[0].join(timeout=10)  # it flushes, closes its connection and ends
    assert not timers[0].is_alive()
    assert _stamp(token) is not None


def test_a_failed_flush_logs_retries_once_and_never_raises(alice, caplog):
    token, raw = create_token(user=alice)
    attempts = []

    def database_down(execute, sql, params, many, context):
        if sql.startswith("UPDATE"):
            attempts.append(sql)
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(database_down), caplog.at_level(logging.WARNING):
        assert token_for(raw) == token  # the lookup itself does not write
        assert flush_last_used() == 0
    assert len(attempts) == 2
    assert "not written (dropped)" in caplog.text
    assert flush_last_used() == 0 and _stamp(token) is None  # dropped: no write later
    assert token_for(raw) == token  # the database is back; a use within the interval...
    assert flush_last_used() == 0  # ...was already noted: the stamp waits for the next one


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_websocket_handshake_notes_its_token(alice, lobby):
    token, raw = await database_sync_to_async(create_token)(user=alice)
    socket, first = await open_path(
        "/ws/me/", headers=[(b"authorization", f"Bearer {raw}".encode())]
    )
    assert not isinstance(first, int)  # accepted
    await socket.disconnect()
    assert await database_sync_to_async(flush_last_used)() == 1
    assert await database_sync_to_async(_stamp)(token) is not None
