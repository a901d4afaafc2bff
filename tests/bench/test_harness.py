"""The benchmark harness' pure parts on fixed data (no server, no benchmark: fast and exact)."""

import json
import os

from bench import report
from bench.clients import StreamLog, sent_at, summarize_logs
from bench.load import split
from bench.measure import cpu_seconds, latency_summary, per_1000, percentile, stream_stats


def test_percentile_is_nearest_rank():
    data = list(range(1, 101))  # 1..100
    assert percentile(data, 50) == 50
    assert percentile(data, 95) == 95
    assert percentile(data, 99) == 99
    assert percentile(data, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_latency_summary_sorts_and_rounds():
    summary = latency_summary([3.0, 1.0, 2.0, 10.0004])
    assert summary == {"samples": 4, "p50": 2.0, "p95": 10.0, "p99": 10.0, "max": 10.0}
    assert latency_summary([])["p50"] is None


def test_stream_stats_counts_loss_duplicates_and_order():
    # expected seqs 11..20; 13 arrives late, 15 twice, 17 and 18 never, 99 is not ours
    seqs = [11, 12, 14, 13, 15, 15, 16, 19, 20, 99]
    assert stream_stats(seqs, 10, 20) == {
        "received": 8,
        "lost": 2,
        "duplicates": 1,
        "out_of_order": 1,
        "extra": 1,
        "gap_runs": 1,
    }
    assert stream_stats([], 0, 3)["lost"] == 3
    assert stream_stats([1, 2, 3], 0, 3) == {
        "received": 3,
        "lost": 0,
        "duplicates": 0,
        "out_of_order": 0,
        "extra": 0,
        "gap_runs": 0,
    }


def test_stream_log_measures_latency_from_the_body_stamp_once_per_seq():
    log = StreamLog()
    body = json.dumps({"t": 1_000_000_000, "i": 0})
    log.record({"seq": 1, "body": body}, now_ns=1_005_000_000)
    log.record({"seq": 1, "body": body}, now_ns=1_009_000_000)  # a duplicate: no new sample
    log.record({"seq": 2, "body": "not json"}, now_ns=1_010_000_000)
    assert list(log.seqs) == [1, 1, 2]
    assert list(log.lat_ms) == [5.0]
    assert sent_at(body) == 1_000_000_000 and sent_at(None) is None
    part, raw = summarize_logs([log], 0, 2)
    assert part["duplicates"] == 1 and part["lost"] == 0 and part["received"] == 2
    assert len(raw) == 8  # one float64 sample


def test_split_spreads_clients_over_processes():
    assert split(10, 4) == [3, 3, 2, 2]
    assert split(2, 4) == [1, 1]
    assert sum(split(1000, 3)) == 1000


def test_per_1000_and_cpu_seconds():
    assert per_1000(2.0, 4000) == 500.0  # 2 s over 4,000 deliveries: 0.5 s = 500 ms per 1,000
    assert per_1000(1.0, 0) is None
    assert cpu_seconds(os.getpid()) > 0


def test_tables_and_problems_from_fixed_rows():
    part = {
        "clients": 2,
        "connected": 2,
        "expected": 20,
        "received": 19,
        "lost": 1,
        "duplicates": 0,
        "out_of_order": 0,
        "unexpected_seqs": 0,
        "clients_with_gaps": 1,
        "closed_by_server": {},
        "other_frames": {},
        "latency_ms": {"samples": 19, "p50": 1.5, "p95": 3.0, "p99": 4.0, "max": 5.0},
        "deliveries_per_s": 19.0,
        "cpu_ms_per_1000_deliveries": 12.5,
    }
    row = {
        "scenario": "fanout",
        "target": "parley",
        "listeners_n": 2,
        "messages": 10,
        "listeners": part,
        "server_cpu_s": 0.25,
        "peak_rss_mib": 80.0,
        "client_cpu_s": 0.1,
        "senders": {"sent": 10, "confirmed": 10, "refused": {}, "disconnected": 0},
    }
    text = report.table([row, {"target": "raw", "error": "boom"}], "fanout")
    header, _, line, error = text.splitlines()
    assert "p99 ms" in header and "CPU ms/1k deliv" in header
    assert line.split("|")[0].strip() == "parley" and "12.5" in line
    assert error == "raw: ERROR boom"
    assert report.problems([row]) == [
        "fanout parley n=2 (listeners): {'lost': 1, 'clients with gaps': 1}"
    ]
    catchup = {"scenario": "catchup", "target": "parley analytics", "events": 5, "processed": 5}
    catchup |= {"exactly_once": True, "mismatches": {}}
    assert "yes" in report.table([catchup], "catchup")
    assert report.problems([catchup]) == []


def _fanout_row(target: str, n: int, p99: float, cpu_s: float, proc: str | None = None) -> dict:
    return {
        "scenario": "fanout",
        "target": target,
        "listeners_n": n,
        "server_cpu_s": cpu_s,
        "server_cpu_by_process_s": {proc or target: cpu_s * 0.8},
        "listeners": {
            "received": n * 200,
            "lost": 0,
            "duplicates": 0,
            "out_of_order": 0,
            "latency_ms": {"p99": p99},
        },
    }


def test_summarize_takes_ratios_within_a_run_then_medians_over_runs():
    from bench.summarize import summarize

    def run(parley_p99: float) -> dict:
        return {
            "results": {
                "fanout": [
                    _fanout_row("parley uvicorn", 1000, parley_p99, 4.0, "uvicorn0"),
                    _fanout_row("raw", 1000, 40.0, 2.0),
                ],
                "catchup": [
                    {"target": "parley analytics", "events_per_s": 6000.0, "exactly_once": True}
                ],  # fmt: skip
            }
        }

    rows = {r["figure"]: r for r in summarize([run(60.0), run(100.0), run(70.0)])}
    p99 = rows["uvicorn: fan-out 1,000 p99 / raw p99"]
    assert p99["runs"] == [1.5, 2.5, 1.75] and p99["median"] == 1.75 and p99["met"] is True
    cpu = rows["uvicorn: CPU/delivery at 1000, all processes / raw"]
    assert cpu["median"] == 2.0 and cpu["met"] is True
    assert rows["uvicorn: CPU/delivery at 1000, server process / raw"]["met"] is None
    assert rows["daphne: fan-out 1,000 p99 / raw p99"]["median"] is None  # not measured
    assert rows["catch-up events/s"]["met"] is True
    assert rows["catch-up exactly once"]["median"] is True
