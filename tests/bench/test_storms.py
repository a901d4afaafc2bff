"""The storm scenarios' pure parts on fixed data: the client's back-off and resume position, its
counting, latency by window, CPU per connect, the tables and the summary (no server)."""

import asyncio
import json
import math
from array import array

from bench import report
from bench.clients import Activity
from bench.measure import delivered_between, windowed
from bench.resumers import Resumer, backoff_delay, summarize
from bench.storm_load import Samples
from bench.storms import figures


def test_backoff_is_client_js_equal_jitter_doubling_from_250_ms_to_15_s():
    assert backoff_delay(0, 0.0) == 0.125 and backoff_delay(0, 0.999) < 0.25
    assert backoff_delay(1, 0.0) == 0.25 and backoff_delay(1, 1.0) == 0.5
    assert backoff_delay(6, 1.0) == 15.0 and backoff_delay(20, 0.0) == 7.5


class FakeSocket:
    """What Resumer._read reads: an async iterator of text frames, then a close code."""

    def __init__(self, frames: list[dict], close_code: int = 1006) -> None:
        self.frames = [json.dumps(f) for f in frames]
        self.close_code = close_code

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for frame in self.frames:
            yield frame


def _new(seq: int, change: int | None = None, t_ns: int = 1, replay: bool = False) -> dict:
    frame = {"type": "message.new", "message": {"seq": seq, "body": json.dumps({"t": t_ns})}}
    if change is not None:
        frame["change"] = change
    if replay:
        frame["replay"] = True
    return frame


def _done(seq: int, change: int | None) -> dict:
    return {"type": "sync.done", "seq": seq, "change": change}


def test_resumer_counts_from_before_a_fresh_sockets_catch_up_and_resumes_from_what_it_has():
    client = Resumer("ws://h/ws/rooms/r/", "plt_x", resume=True, activity=Activity())
    assert client.endpoint() == "ws://h/ws/rooms/r/"  # a first connect starts from now

    async def scenario():
        # A fresh socket: the catch-up of seqs 11 and 12 (committed while it connected) comes
        # before its sync.done at 12, then live 13 (change 23); the connection drops.
        first = [_new(11, replay=True), _new(12, replay=True), _done(12, 22), _new(13, 23)]
        assert await client._read(FakeSocket(first)) == 1006
        assert client.endpoint() == "ws://h/ws/rooms/r/?after_seq=13&after_change=23"
        # The resume replays 14 and 15, sync.done, then 15 again (a duplicate) and 16.
        again = [_new(14, replay=True), _new(15, replay=True), _done(15, 25)]
        await client._read(FakeSocket([*again, _new(15, 25), _new(16, 26)]))

    asyncio.run(scenario())
    assert client.base == 10 and client.connects == 2
    stats = client.stats(17)
    assert stats == {
        "received": 6,
        "lost": 1,  # 17 never came
        "duplicates": 1,
        "out_of_order": 0,
        "extra": 0,
        "gap_runs": 1,
    }
    assert not client.complete(17) and client.complete(16)


def test_raw_clients_are_counted_from_their_last_connection_and_report_what_they_missed():
    client = Resumer("ws://h/", None, resume=False, activity=Activity())

    async def scenario():
        await client._read(FakeSocket([_done(5, None), _new(6), _new(7)]))
        assert client.endpoint() == "ws://h/"  # no resume: from now again
        await client._read(FakeSocket([_done(9, None), _new(10), _new(11), _new(12)]))

    asyncio.run(scenario())
    stats = client.stats(12)
    assert stats["received"] == 3 and stats["lost"] == 0 and stats["extra"] == 0
    assert stats["missed_without_resume"] == 2  # 8 and 9 came while it was away
    part, (sent, lat, live) = summarize([client], 12)
    assert part["expected"] == 3 and part["received"] == 3 and part["connected"] == 1
    assert len(array("d", sent)) == 5 and len(live) == 5


def test_live_flag_marks_messages_sent_after_the_connection_was_ready():
    client = Resumer("ws://h/", None, resume=False, activity=Activity())
    client._synced(_done(0, None), now_ns=2_000_000_000)  # ready at t = 2 s
    client.log.record(_new(1, t_ns=1_000_000_000)["message"], now_ns=3_000_000_000)
    client.log.record(_new(2, t_ns=2_500_000_000)["message"], now_ns=3_000_000_000)
    assert list(client.log.live) == [0, 1]
    assert list(client.log.lat_ms) == [2000.0, 500.0]


def test_latency_by_window_and_deliveries_between():
    sent = [100.2, 100.5, 101.5, 103.0, 109.0]
    lat = [10.0, 20.0, 30.0, 40.0, 50.0]
    out = windowed(sent, lat, 100.0, (0, 1, 2, math.inf))
    assert [(w["from_s"], w["to_s"], w["samples"], w["p99"]) for w in out] == [
        (0, 1, 2, 20.0),
        (1, 2, 1, 30.0),
        (2, None, 2, 50.0),
    ]
    live = windowed(sent, lat, 100.0, (-math.inf, 1, math.inf), keep=bytes([0, 1, 1, 0, 0]))
    assert [(w["from_s"], w["samples"]) for w in live] == [(None, 1), (1, 1)]
    assert delivered_between(sent, lat, 100.0, 101.0) == 2
    assert delivered_between(sent, lat, 101.0, 200.0) == 3


def _window(start: float, seconds: float, cpu: float) -> dict:
    return {"start": start, "end": start + seconds, "seconds": seconds, "cpu_s": cpu}


def test_storm_figures_take_the_baseline_off_the_connects_cpu():
    # The storm at t = 101 (first attempt), every listener ready at 102; the sender posted
    # alone during the lead (1 s, 0.1 CPU-s), and after the storm 100 deliveries cost 0.5 CPU-s
    # over 2 s beyond the sender's 0.2: 3 ms per delivery.
    sent = array("d", [101.5, 101.5, 102.0] + [103.5] * 100)
    lat = array("d", [100.0, 600.0, 5.0] + [10.0] * 100)
    result = {
        "connected_before": 0,
        "reports": [
            {"phase_at": 101.0, "last_ready_at": 102.0, "ready": 2, "ready_ats": [101.5, 102.0]}
        ],
        "windows": {
            "lead": _window(100.0, 1.0, 0.1),
            "phase": _window(101.0, 2.0, 1.2),  # with the tail; 3 deliveries in it
            "after": _window(103.0, 2.0, 0.5),
        },
        "listeners": {"connects": 2, "received": 103},
        "samples": Samples(sent, lat, bytearray([0, 0, 0] + [1] * 100)),
    }
    out = figures(result, storm=True)
    assert out["phase_seconds"] == 1.0 and out["connects_in_phase"] == 2
    assert out["ready_after_s"] == {"p50": 0.5, "p95": 1.0, "p99": 1.0, "max": 1.0}
    assert out["cpu_us_per_delivery_after"] == 3000.0
    # 1.2 CPU-s less 0.2 (the sender alone for 2 s) less 3 deliveries x 3 ms = 0.991 s
    assert out["connect_cpu_s"] == 0.991 and out["cpu_ms_per_connect"] == 495.5
    assert out["headline_ms"]["samples"] == 101  # sent from 1 s after the first connect
    assert out["headline_ready_ms"]["samples"] == 100
    assert "samples" not in out and "reports" not in out
    assert out["listeners"]["latency_ms"] == out["headline_ms"]


def test_wave_figures_take_the_steady_cost_off_and_report_the_wave():
    sent = array("d", [99.0, 100.5, 101.0, 104.0])
    lat = array("d", [5.0, 400.0, 300.0, 5.0])
    result = {
        "connected_before": 2,
        "reports": [{"phase_at": 100.0, "last_ready_at": 102.0, "ready": 2}],
        "windows": {
            "lead": _window(98.0, 2.0, 0.4),  # with the listeners: 0.2 CPU-s per second
            "phase": _window(100.0, 3.0, 1.6),
            "after": _window(103.0, 2.0, 0.4),
        },
        "listeners": {"connects": 4, "received": 4},
        "samples": Samples(sent, lat, bytearray([1, 0, 1, 1])),
    }
    out = figures(result, storm=False)
    assert out["connects_in_phase"] == 2 and out["phase_seconds"] == 2.0
    assert out["connect_cpu_s"] == 1.0 and out["cpu_ms_per_connect"] == 500.0
    assert out["headline_ms"]["samples"] == 2 and out["headline_ms"]["p99"] == 400.0
    assert out["headline_ready_ms"]["samples"] == 1
    before = out["latency_by_window"][0]
    assert before["from_s"] is None and before["samples"] == 1


def _storm_row(scenario: str, target: str, p99: float, cpu_ms: float) -> dict:
    part = {
        "clients": 10,
        "connected": 10,
        "expected": 100,
        "received": 100,
        "lost": 0,
        "duplicates": 0,
        "out_of_order": 0,
        "unexpected_seqs": 0,
        "clients_with_gaps": 0,
        "missed_without_resume": 0,
        "closed_by_server": {},
        "other_frames": {},
    }
    return {
        "scenario": scenario,
        "target": target,
        "sockets": 10,
        "messages": 10,
        "phase_seconds": 1.5,
        "cpu_ms_per_connect": cpu_ms,
        "listeners": part,
        "headline_ms": {"p50": 1.0, "p99": p99},
        "headline_ready_ms": {"p99": p99},
        "latency_by_window": [
            {"from_s": None, "to_s": 0, "samples": 3, "p99": 7.0},
            {"from_s": 0, "to_s": None, "samples": 5, "p99": p99},
        ],
    }


def test_storm_tables_and_summary():
    from bench.summarize import summarize

    storm = _storm_row("connect_storm", "parley sqlite", 90.0, 6.0)
    raw = _storm_row("connect_storm", "raw", 30.0, 0.5)
    text = report.table([storm, raw], "connect_storm")
    header, _, line, _ = text.splitlines()
    assert "CPU ms/connect" in header and "p99 ms from 1s" in header
    assert line.split("|")[0].strip() == "parley sqlite" and "<0:7 >0:90" in line
    assert report.problems([storm, raw]) == []
    wave = _storm_row("reconnect_wave", "parley uvicorn sqlite", 400.0, 8.0)
    wave["listeners"]["lost"] = 1
    assert "p99 ms in wave" in report.table([wave], "reconnect_wave")
    assert report.problems([wave]) == [
        "reconnect_wave parley uvicorn sqlite (listeners): {'lost': 1}"
    ]

    runs = [
        {"results": {"connect_storm": [storm, raw], "reconnect_wave": [wave]}},
        {"results": {"connect_storm": [{**storm, "cpu_ms_per_connect": 1.0}, raw]}},
    ]
    rows = {r["figure"]: r for r in summarize(runs)}
    cpu = rows["daphne sqlite: connect storm CPU per connect / raw"]
    assert cpu["runs"] == [12.0, 2.0] and cpu["median"] == 7.0 and cpu["met"] is False
    p99 = rows["daphne sqlite: connect storm p99 from 1 s / raw p99"]
    assert p99["median"] == 3.0 and p99["met"] is True
    assert rows["daphne sqlite: connect storm every message once, in order"]["median"] is True
    assert rows["uvicorn sqlite: reconnect wave every message once, in order"]["runs"] == [
        False,
        False,
    ]
    assert rows["uvicorn sqlite: reconnect wave p99 in the wave / raw p99"]["met"] is None


def test_connect_profile_sorts_samples_into_steps_and_scales_them_to_thread_cpu(tmp_path):
    from bench.connect_profile import classify, table, tally

    loop = "thread (100): MainThread;main (config/daphne_server.py:1)"
    consumer = f"{loop};Application.__call__ (config/application.py:79)"
    db = "thread (101): parley-db_0;_worker (concurrent/futures/thread.py:83)"
    profile = tmp_path / "p.txt"
    profile.write_text(
        f"{loop};HTTPChannel.dataReceived (twisted/web/http.py:2358) 30\n"
        f"{consumer};_go_online (chat/consumers.py:343);enter (chat/online.py:81) 10\n"
        f"{loop};Hub._receive (chat/hub.py:151) 60\n"
        f"{db};token_for (accounts/tokens.py:92) 25\n"
        f"{db};record_connection (chat/presence.py:124);flush_after_commit (x.py:1) 75\n"
    )
    assert classify(f"{db};room_for_user (chat/selectors.py:31)") == (
        "room and membership read",
        True,
    )
    samples = tally([profile], main_tid=100)
    assert samples[("fan-out of live messages", "loop")] == 60
    # 10 connects; the loop thread used 1 CPU-s over 100 samples, the db threads 2 over 100
    rows = {r["step"]: r for r in table(samples, {"loop": 1.0, "db": 2.0}, connects=10)}
    assert rows["token lookup, last_used_at UPDATE"]["db_ms"] == 50.0  # 25% of 2 s / 10
    assert rows["relay publish of user.connected (on commit)"]["ms"] == 150.0
    handshake = rows["handshake and event loop (server, Twisted, autobahn, asyncio)"]
    assert handshake["loop_ms"] == 30.0 and handshake["connect"]
    fan_out = rows["fan-out of live messages"]
    assert fan_out["ms"] == 60.0 and fan_out["percent"] is None and not fan_out["connect"]
    assert sum(r["percent"] for r in rows.values() if r["connect"]) == 100.0
