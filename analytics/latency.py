"""Push latency percentiles from a fine log-scale histogram.

Each minute keeps a count per bucket (``LatencyMinute.buckets``). Bucket ``i`` holds latencies in
[FLOOR_MS * GROWTH**i, FLOOR_MS * GROWTH**(i+1)); bucket ``-1`` everything under FLOOR_MS. A
bucket spans 1 %, so a percentile reported as its bucket's geometric middle is within 0.5 % of
the measured (nearest-rank) value, and minutes merge exactly by adding counts. Only occupied
buckets are stored: a minute of real traffic has a few dozen keys, never more than ~1,600
(0.01 ms to 1 min).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

FLOOR_MS = 0.01
GROWTH = 1.01
_LOG_GROWTH = math.log(GROWTH)


def bucket_of(value_ms: float) -> int:
    """The bucket index of one latency (ms)."""
    if value_ms < FLOOR_MS:
        return -1
    return math.floor(math.log(value_ms / FLOOR_MS) / _LOG_GROWTH)


def add(buckets: dict[str, int], values: Iterable[float]) -> dict[str, int]:
    """``buckets`` (JSON keys: the index as a string) with ``values`` counted in; a new dict."""
    merged = dict(buckets)
    for value in values:
        key = str(bucket_of(value))
        merged[key] = merged.get(key, 0) + 1
    return merged


def _middle(index: int) -> float:
    return 0.0 if index < 0 else FLOOR_MS * GROWTH ** (index + 0.5)


def percentiles(
    histograms: Iterable[Mapping[str, int]], qs: Iterable[float], *, max_ms: float | None = None
) -> dict[float, float | None]:
    """The nearest-rank q-quantile of every latency counted in ``histograms``, for each q in
    ``qs`` (0 < q <= 1), within 0.5 %; never above ``max_ms`` (the exact maximum) when given.
    None when nothing was counted."""
    counts: dict[int, int] = {}
    for histogram in histograms:
        for key, n in histogram.items():
            counts[int(key)] = counts.get(int(key), 0) + n
    total = sum(counts.values())
    order = sorted(counts)
    result: dict[float, float | None] = {}
    for q in qs:
        if not total:
            result[q] = None
            continue
        rank, seen = max(1, math.ceil(q * total)), 0
        for index in order:
            seen += counts[index]
            if seen >= rank:
                value = round(_middle(index), 3)  # clamped after rounding: never above max_ms
                result[q] = min(value, max_ms) if max_ms is not None else value
                break
    return result
