"""Per-user rate windows (chat.ratelimit) on the real Redis: a window starts at the user's first
counted action, so a burst is counted whole whatever the clock says (the windows used to be
aligned on the clock, and a burst that straddled a boundary was counted as two: a test that
posted five then one more saw the sixth allowed when it ran across a 10 s boundary)."""

from __future__ import annotations

import pytest
from django.conf import settings

from chat import actions, ratelimit
from chat.models import Message
from tests.support.procs import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = 3600


def test_the_first_action_opens_a_whole_window():
    allowed, quota = ratelimit.take("t", 1, limit=2, window=HOUR)
    assert allowed and quota == ratelimit.Quota(limit=2, remaining=1, reset=HOUR)


def test_a_refusal_waits_for_what_is_left_of_the_users_window():
    assert ratelimit.waits("t", [1, 1, 2, 1], limit=2, window=HOUR)[:3] == [None, None, None]
    [wait] = ratelimit.waits("t", [1], limit=2, window=HOUR)
    assert HOUR - 2 <= wait <= HOUR  # the window opened by the first action, not a clock's
    assert ratelimit.quota("t", 1, limit=2, window=HOUR).remaining == 0
    assert ratelimit.quota("t", 2, limit=2, window=HOUR).remaining == 1  # per user


def test_a_user_with_no_window_open_has_a_whole_one_ahead():
    assert ratelimit.quota("t", 1, limit=2, window=HOUR) == ratelimit.Quota(2, 2, HOUR)


def test_the_next_window_starts_when_the_last_one_ends():
    assert ratelimit.waits("t", [1, 1], limit=1, window=1) == [None, 1]
    wait_until(
        lambda: ratelimit.quota("t", 1, limit=1, window=1).remaining == 1,
        timeout=5,
        what="the 1 s window to end",
    )
    assert ratelimit.waits("t", [1, 1], limit=1, window=1) == [None, 1]


def test_windows_of_other_lengths_count_apart():
    assert ratelimit.allow_many("t", [1, 1], limit=1, window=60) == [True, False]
    assert ratelimit.allow_many("t", [1], limit=1, window=HOUR) == [True]


def test_a_refused_post_says_the_wait_of_its_authors_window(lobby, bob, monkeypatch):
    monkeypatch.setitem(settings.PARLEY, "RATE_LIMIT_MESSAGES", 1)
    monkeypatch.setitem(settings.PARLEY, "RATE_LIMIT_WINDOW_SECONDS", HOUR)
    requests = [actions.PostRequest(bob, lobby, body) for body in ("one", "two")]
    first, refused = actions.post_messages(requests)
    assert isinstance(first, actions.PostResult)
    assert refused.code == "rate_limited" and HOUR - 2 <= refused.extra["retry_after"] <= HOUR
    assert list(Message.objects.values_list("body", flat=True)) == ["one"]
