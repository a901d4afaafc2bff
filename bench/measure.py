"""Measurements: /proc CPU and RSS of server processes, percentiles, per-stream delivery checks.

Stdlib only, so client processes and tests import it cheaply.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                kids = [int(p) for p in children.read_text().split()]
                found += kids
                todo += kids
    return found


def cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid``, its reaped children (cutime+cstime) and its live descendants."""
    total = 0.0
    for number in [pid, *_descendants(pid)]:
        try:
            stat = Path(f"/proc/{number}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
        total += sum(int(v) for v in fields[11:15]) / CLK_TCK
    return total


def _status_mib(pid: int, field: str) -> float | None:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM) of ``pid`` plus its live descendants."""
    total, found = 0, False
    for number in [pid, *_descendants(pid)]:
        try:
            status = Path(f"/proc/{number}/status").read_text()
        except OSError:
            continue
        match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            total += int(match.group(1))
            found = True
    return total / 1024 if found else None


def peak_rss_mib(pid: int) -> float | None:
    """Peak resident set (VmHWM) since each process started, in MiB."""
    return _status_mib(pid, "VmHWM")


def rss_mib(pid: int) -> float | None:
    """Current resident set (VmRSS), in MiB."""
    return _status_mib(pid, "VmRSS")


class CpuWindow:
    """Per named server process, between ``__init__`` and ``stop()``: CPU seconds spent, and
    the highest resident set seen (VmRSS sampled every ``interval`` s by a thread)."""

    def __init__(self, processes: dict[str, int], interval: float = 0.25) -> None:
        self.processes = dict(processes)
        self.rss_peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._sample()
        self.start = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        for name, pid in self.processes.items():
            value = rss_mib(pid)
            if value is not None:
                self.rss_peak[name] = max(self.rss_peak.get(name, 0.0), value)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._sample()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()
        return {
            name: round(cpu_seconds(pid) - self.start[name], 3)
            for name, pid in self.processes.items()
        }

    def rss(self) -> dict[str, float]:
        return {name: round(v, 1) for name, v in self.rss_peak.items()}


def peak_rss(processes: dict[str, int]) -> dict[str, float | None]:
    return {name: _round(peak_rss_mib(pid), 1) for name, pid in processes.items()}


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence (None when empty)."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def latency_summary(samples: Iterable[float]) -> dict[str, float | int | None]:
    ordered = sorted(samples)
    return {
        "samples": len(ordered),
        **{f"p{p}": _round(percentile(ordered, p)) for p in (50, 95, 99)},
        "max": _round(ordered[-1] if ordered else None),
    }


def stream_stats(seqs: Iterable[int], lo: int, hi: int) -> dict[str, int]:
    """Check one client's stream of seqs (arrival order) against the expected lo+1 .. hi."""
    seen: set[int] = set()
    top = lo
    dups = out_of_order = extra = 0
    for seq in seqs:
        if seq in seen:
            dups += 1
            continue
        seen.add(seq)
        if not lo < seq <= hi:
            extra += 1
            continue
        if seq < top:
            out_of_order += 1
        top = max(top, seq)
    missing = sorted(set(range(lo + 1, hi + 1)) - seen)
    gap_runs = sum(1 for i, seq in enumerate(missing) if i == 0 or missing[i - 1] != seq - 1)
    return {
        "received": len(seen) - extra,
        "lost": len(missing),
        "duplicates": dups,
        "out_of_order": out_of_order,
        "extra": extra,
        "gap_runs": gap_runs,
    }


def windowed(
    sent: Sequence[float],
    lat: Sequence[float],
    origin: float,
    edges: Sequence[float],
    keep: bytes | bytearray | None = None,
) -> list[dict[str, float | int | None]]:
    """Latency summaries of the samples (send time ``sent[i]``, latency ``lat[i]``) by when they
    were sent: one per window [origin + edges[k], origin + edges[k + 1]) (``math.inf`` allowed;
    written None); ``keep``: only the samples whose flag is set."""
    buckets: list[list[float]] = [[] for _ in edges[1:]]
    for i, (at, ms) in enumerate(zip(sent, lat, strict=True)):
        if keep is not None and not keep[i]:
            continue
        k = bisect_right(edges, at - origin) - 1
        if 0 <= k < len(buckets):
            buckets[k].append(ms)
    finite = lambda v: None if math.isinf(v) else v  # noqa: E731
    return [
        {"from_s": finite(edges[k]), "to_s": finite(edges[k + 1]), **latency_summary(bucket)}
        for k, bucket in enumerate(buckets)
    ]


def delivered_between(sent: Sequence[float], lat: Sequence[float], start: float, end: float) -> int:
    """How many samples were received (send time + latency) in [start, end) (epoch seconds)."""
    return sum(1 for at, ms in zip(sent, lat, strict=True) if start <= at + ms / 1000 < end)


def per_1000(cpu_s: float | None, count: int | float | None) -> float | None:
    """CPU seconds per 1,000 of something (deliveries, events), in milliseconds of CPU."""
    if cpu_s is None or not count:
        return None
    return round(cpu_s / count * 1000 * 1000, 2)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
