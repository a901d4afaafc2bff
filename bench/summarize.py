"""Issue 6's and issue 14's targets from several full runs: each ratio is taken within one run
(Parley and the raw reference side by side), then the median over the runs is compared with
its target.

    .venv/bin/python -m bench.summarize bench/results/<run1> bench/results/<run2> ...

Prints a table and writes ``summary.json`` next to the first run's report (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

Report = dict[str, Any]
SERVERS = {"daphne": "parley", "uvicorn": "parley uvicorn"}


def _row(report: Report, scenario: str, target: str, **match: Any) -> dict | None:
    for row in report["results"].get(scenario, []):
        if row.get("target") == target and "error" not in row:
            if all(row.get(k) == v for k, v in match.items()):
                return row
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _fanout(report: Report, target: str, n: int) -> dict | None:
    return _row(report, "fanout", target, listeners_n=n)


def _p99(row: dict | None) -> float | None:
    return row["listeners"]["latency_ms"]["p99"] if row else None


def _cpu_per_1k(row: dict | None, only: str | None = None) -> float | None:
    """Server CPU ms per 1,000 deliveries: every server process, or only the one named."""
    if not row or not row["listeners"]["received"]:
        return None
    cpu = row["server_cpu_s"] if only is None else row["server_cpu_by_process_s"].get(only)
    return None if cpu is None else round(cpu * 1e6 / row["listeners"]["received"], 1)


def _clean(row: dict | None) -> bool:
    if not row:
        return False
    part = row.get("listeners") or {}
    return part.get("lost") == 0 and part.get("duplicates") == 0 and part.get("out_of_order") == 0


def measures(report: Report) -> dict[str, Any]:
    """The target-bearing figures of one run."""
    out: dict[str, Any] = {}
    raw1000, raw100 = _fanout(report, "raw", 1000), _fanout(report, "raw", 100)
    for server, target in SERVERS.items():
        f1000, f100 = _fanout(report, target, 1000), _fanout(report, target, 100)
        proc = f"{server}0"
        out[f"{server}: fan-out 1,000 p99 / raw p99"] = _ratio(_p99(f1000), _p99(raw1000))
        out[f"{server}: fan-out 1,000 lost+dup+ooo == 0"] = _clean(f1000)
        for n, row, raw in ((100, f100, raw100), (1000, f1000, raw1000)):
            out[f"{server}: CPU/delivery at {n}, all processes / raw"] = _ratio(
                _cpu_per_1k(row), _cpu_per_1k(raw)
            )
            out[f"{server}: CPU/delivery at {n}, server process / raw"] = _ratio(
                _cpu_per_1k(row, proc), _cpu_per_1k(raw)
            )
        pg = _row(report, "throughput", f"{target} postgres")
        out[f"{server}: throughput PostgreSQL msg/s"] = pg.get("messages_per_s") if pg else None
        out[f"{server}: throughput PostgreSQL / raw"] = _ratio(
            _get(pg, "messages_per_s"), _get(_row(report, "throughput", "raw"), "messages_per_s")
        )
        out[f"{server}: throughput PostgreSQL lost == 0"] = _clean(pg)
        push = _row(report, "idle", f"{target} push")
        poll = _row(report, "idle", "parley poll 1s")
        raw_push = _row(report, "idle", "raw push")
        out[f"{server}: idle CPU, polling / push"] = _ratio(
            poll and poll.get("idle_cpu_per_s"), push and push.get("idle_cpu_per_s")
        )
        out[f"{server}: memory per idle socket / raw"] = _ratio(
            push and push.get("kib_per_idle_socket"),
            raw_push and raw_push.get("kib_per_idle_socket"),
        )
    out.update(_storms(report))
    catchup = _row(report, "catchup", "parley analytics")
    out["catch-up events/s"] = catchup.get("events_per_s") if catchup else None
    out["catch-up exactly once"] = bool(catchup and catchup.get("exactly_once"))
    return out


def _storms(report: Report) -> dict[str, Any]:
    """Issue 14's figures: connect_storm and reconnect_wave, per server and database measured."""
    out: dict[str, Any] = {}
    raw_storm = _row(report, "connect_storm", "raw")
    raw_wave = _row(report, "reconnect_wave", "raw")
    for server, target in SERVERS.items():
        for database in ("sqlite", "postgres"):
            storm = _row(report, "connect_storm", f"{target} {database}")
            wave = _row(report, "reconnect_wave", f"{target} {database}")
            if storm is None and wave is None and database != "sqlite":
                continue  # not measured on this database in this run
            name = f"{server} {database}"
            out[f"{name}: connect storm CPU per connect / raw"] = _ratio(
                _get(storm, "cpu_ms_per_connect"), _get(raw_storm, "cpu_ms_per_connect")
            )
            out[f"{name}: connect storm p99 from 1 s / raw p99"] = _ratio(
                _headline_p99(storm), _headline_p99(raw_storm)
            )
            out[f"{name}: connect storm every message once, in order"] = _storm_clean(storm)
            out[f"{name}: reconnect wave p99 in the wave / raw p99"] = _ratio(
                _headline_p99(wave), _headline_p99(raw_wave)
            )
            out[f"{name}: reconnect wave CPU per reconnect / raw"] = _ratio(
                _get(wave, "cpu_ms_per_connect"), _get(raw_wave, "cpu_ms_per_connect")
            )
            out[f"{name}: reconnect wave every message once, in order"] = _storm_clean(wave)
    return out


def _get(row: dict | None, key: str) -> Any:
    return row.get(key) if row else None


def _headline_p99(row: dict | None) -> float | None:
    return (row.get("headline_ms") or {}).get("p99") if row else None


def _storm_clean(row: dict | None) -> bool:
    """Every listener ready, and every message it is counted against once and in order."""
    if not _clean(row):
        return False
    part = row["listeners"]
    return part.get("connected") == part.get("clients") and part.get("unexpected_seqs") == 0


# (figure suffix, target, is it met?)
TARGETS: list[tuple[str, str, Callable[[Any], bool] | None]] = [
    ("fan-out 1,000 p99 / raw p99", "<= 2", lambda v: v <= 2),
    ("fan-out 1,000 lost+dup+ooo == 0", "all runs", bool),
    ("CPU/delivery at 100, all processes / raw", "<= 2", lambda v: v <= 2),
    ("CPU/delivery at 1000, all processes / raw", "<= 2", lambda v: v <= 2),
    ("CPU/delivery at 100, server process / raw", "(the ASGI server only)", None),
    ("CPU/delivery at 1000, server process / raw", "(the ASGI server only)", None),
    ("throughput PostgreSQL msg/s", ">= 2000", lambda v: v >= 2000),
    ("throughput PostgreSQL / raw", "(reported)", None),
    ("throughput PostgreSQL lost == 0", "all runs", bool),
    ("idle CPU, polling / push", ">= 20", lambda v: v >= 20),
    ("memory per idle socket / raw", "<= 2", lambda v: v <= 2),
    ("connect storm CPU per connect / raw", "<= 3", lambda v: v <= 3),
    ("connect storm p99 from 1 s / raw p99", "<= 3", lambda v: v <= 3),
    ("connect storm every message once, in order", "all runs", bool),
    ("reconnect wave p99 in the wave / raw p99", "(reported)", None),
    ("reconnect wave CPU per reconnect / raw", "(reported)", None),
    ("reconnect wave every message once, in order", "all runs", bool),
    ("catch-up events/s", ">= 5000", lambda v: v >= 5000),
    ("catch-up exactly once", "all runs", bool),
]


def summarize(runs: list[Report]) -> list[dict[str, Any]]:
    per_run = [measures(r) for r in runs]
    keys = list(dict.fromkeys(key for m in per_run for key in m))  # a database may be in some
    rows = []
    for key in keys:
        values = [m.get(key) for m in per_run]
        target, check = next(
            ((t, c) for suffix, t, c in TARGETS if key.endswith(suffix)), ("", None)
        )
        if all(isinstance(v, bool) for v in values):
            median: Any = all(values)
        else:
            numbers = [v for v in values if v is not None]
            median = round(statistics.median(numbers), 2) if numbers else None
        met = None if check is None or median is None else bool(check(median))
        rows.append({"figure": key, "runs": values, "median": median, "target": target, "met": met})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.summarize", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="result directories (or report.json)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    paths = [p / "report.json" if p.is_dir() else p for p in args.runs]
    rows = summarize([json.loads(p.read_text()) for p in paths])
    width = max(len(r["figure"]) for r in rows)
    print(f"{'figure':<{width}} | {'runs':<26} | median  | {'target':<22} | met")
    for r in rows:
        runs = ", ".join(str(v) for v in r["runs"])
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        median = str(r["median"])
        print(f"{r['figure']:<{width}} | {runs:<26} | {median:<7} | {r['target']:<22} | {met}")
    out = args.out or paths[0].parent / "summary.json"
    out.write_text(json.dumps({"runs": [str(p) for p in paths], "rows": rows}, indent=2) + "\n")
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
