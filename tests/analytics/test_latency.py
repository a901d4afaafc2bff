"""Push latency percentiles are measured, not bucket bounds: known latencies in, their
nearest-rank p50/p95 out (within the histogram's 0.5 %), across minutes."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from analytics import latency
from analytics.aggregates import _add_latencies, minute_of
from analytics.selectors import latency as latency_summary

pytestmark = pytest.mark.django_db


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_percentiles_of_known_latencies_across_two_minutes():
    now = minute_of(timezone.now())
    first = [11.0 + i for i in range(60)]  # 11 .. 70 ms
    second = [71.0 + i for i in range(40)]  # 71 .. 110 ms
    with transaction.atomic():  # _add_latencies runs inside the subscriber's transaction
        _add_latencies({now - timedelta(minutes=1): first[:30], now: second})
        _add_latencies({now - timedelta(minutes=1): first[30:]})  # adds to the minute's row
    summary = latency_summary(since=now - timedelta(minutes=5))
    assert summary["count"] == 100 and summary["max_ms"] == 110.0
    # Nearest rank: the 50th value is 60 ms, the 95th 105 ms (bucket bounds said 100 and 250).
    assert summary["p50_ms"] == pytest.approx(60.0, rel=0.005)
    assert summary["p95_ms"] == pytest.approx(105.0, rel=0.005)


def test_percentiles_within_half_a_percent_over_a_wide_spread():
    rng = random.Random(15)
    values = [rng.lognormvariate(1.5, 1.2) for _ in range(5000)]  # ~0.1 ms to ~400 ms
    buckets = latency.add({}, values)
    got = latency.percentiles([buckets], (0.5, 0.95, 0.99), max_ms=max(values))
    for q in (0.5, 0.95, 0.99):
        assert got[q] == pytest.approx(_nearest_rank(values, q), rel=0.005, abs=0.001)
    assert len(buckets) < 1000  # bounded: occupied 1 % buckets only


def test_never_above_the_maximum_after_rounding():
    """A maximum just under a thousandth (22.630999999999997 in CI) used to be reported below a
    p95 that the rounding to 0.001 ms had pushed above it (22.631)."""
    for k in range(1, 100_000, 7):
        top = k / 1000 - 1e-12
        got = latency.percentiles([latency.add({}, [top / 2, top])], (0.5, 0.95), max_ms=top)
        assert got[0.5] <= got[0.95] <= top


def test_edges_zero_single_value_and_nothing():
    assert latency.percentiles([{}], (0.5,)) == {0.5: None}
    assert latency.percentiles([latency.add({}, [0.0, 0.0, 0.004])], (0.95,)) == {0.95: 0.0}
    # One value: p50 = p95 = that value, and never above the exact maximum.
    one = latency.percentiles([latency.add({}, [42.0])], (0.5, 0.95), max_ms=42.0)
    assert one[0.5] == one[0.95] == pytest.approx(42.0, rel=0.005) and one[0.95] <= 42.0
    assert latency_summary(since=timezone.now())["p50_ms"] is None
