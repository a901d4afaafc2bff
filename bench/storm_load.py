"""Running one storm load (bench/storms.py): a sender posting at a fixed rate and client
processes of resuming listeners (bench/resumers.py), in phases:

    ready (the sender connected; in a wave, every listener too) -> ``go``: the sender posts
    -> ``lead`` s later, ``phase``: the storm (every listener connects at once) or the wave
       (every listener's connection aborted: each reconnects with back-off and resumes)
    -> every listener ready again -> the sender's last post confirmed -> listeners drained.

The servers' CPU is measured over three windows: the lead (the steady cost before the phase),
the phase (from ``phase`` until every listener is ready, plus ``TAIL_S`` for the work the
connects left queued: presence rows through the relay and the analytics worker) and after it
(to the end). The wall-clock bounds of each window go with the result, so deliveries can be
counted per window from the samples (send time, latency).
"""

from __future__ import annotations

import os
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.clients import ClientOpts
from bench.load import (
    merge,
    merge_deliveries,
    merge_senders,
    next_item,
    settle,
    start_clients,
    stop_clients,
    wait_ready,
)
from bench.measure import CpuWindow

TAIL_S = 1.0


@dataclass
class StormPlan:
    listeners: list[dict]  # per client process: {"count", "url", "tokens", "resume", "mode"}
    sender: dict  # {"url", "token"}
    lead: float  # seconds the sender posts before the phase


@dataclass
class Samples:
    """Every (message, listener) first receipt: send time (epoch s), latency (ms), and whether
    the message was sent after the listener's connection was ready (1)."""

    sent: array
    lat: array
    live: bytearray

    @classmethod
    def merge(cls, parts: list[tuple[bytes, bytes, bytes]]) -> Samples:
        out = cls(array("d"), array("d"), bytearray())
        for sent, lat, live in parts:
            out.sent.frombytes(sent)
            out.lat.frombytes(lat)
            out.live.extend(live)
        return out


def run_storm(plan: StormPlan, processes: dict[str, int], opts: ClientOpts) -> dict[str, Any]:
    """Run one storm load; the result's ``samples`` (a :class:`Samples`) is for the caller to
    reduce before the result goes into the report."""
    settle_s = settle(processes)
    started = time.monotonic()
    kinds = [("resumers", plan.listeners), ("sender", [plan.sender])]
    ctl, ready_q, result_q, procs = start_clients(kinds, opts)
    try:
        connected, failures = wait_ready(procs, ready_q, opts.ready_timeout)
        if connected["sender"] < 1:
            raise RuntimeError(f"the sender could not connect: {dict(failures)}")
        ctl.ready.set()
        ready_s = time.monotonic() - started
        load_before = os.getloadavg()

        windows: dict[str, dict[str, Any]] = {}
        lead = _Window(processes)
        ctl.go.set()
        time.sleep(plan.lead)
        windows["lead"] = lead.stop()

        phase = _Window(processes)
        ctl.phase.set()
        deadline = time.monotonic() + opts.ready_timeout + 30
        reports = [
            next_item(ready_q, deadline, procs, "the listeners to be ready again")[2]
            for _ in plan.listeners
        ]
        ready_again_s = time.monotonic() - phase.t0
        time.sleep(TAIL_S)
        windows["phase"] = phase.stop()

        after = _Window(processes)
        sender: dict[str, Any] = {}
        parts: list[dict] = []
        raw: list[tuple[bytes, bytes, bytes]] = []
        deadline = time.monotonic() + opts.seconds + 2 * opts.confirm_timeout
        deadline += opts.drain_timeout + 60
        for _ in procs:
            kind, _, result, samples = next_item(result_q, deadline, procs, "the results")
            if kind == "sender":
                sender = result
                ctl.base.value = result["base_seq"]
                ctl.last.value = result["last_seq"]
                ctl.sent_done.set()
            else:
                parts.append(result)
                raw.append(samples)
        windows["after"] = after.stop()
        load_after = os.getloadavg()
        ctl.finish.set()
    finally:
        stop_clients(procs, ctl)

    server_cpu: Counter[str] = Counter()
    for window in windows.values():
        server_cpu.update(window["cpu_by_process_s"])
    return {
        "settle_seconds": settle_s,
        "ready_seconds": round(ready_s, 2),  # processes up (wave: listeners connected)
        "connected_before": connected["resumers"],
        "connect_failures_before": dict(failures),
        "messages": ctl.last.value - ctl.base.value,
        "senders": merge_senders([sender]),
        "windows": windows,
        "ready_again_seconds": round(ready_again_s, 2),  # phase -> every process reported
        "reports": reports,
        "window_seconds": round(sum(w["seconds"] for w in windows.values()), 2),
        "server_cpu_s": round(sum(server_cpu.values()), 3),
        "server_cpu_by_process_s": {k: round(v, 3) for k, v in server_cpu.items()},
        "peak_rss_mib": round(sum(v for v in windows["phase"]["peak_rss_mib"].values() if v), 1),
        "client_cpu_s": round(sum(p["cpu_s"] for p in parts) + sender.get("cpu_s", 0.0), 3),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "listeners": _merge_parts(parts),
        "samples": Samples.merge(raw),
    }


class _Window:
    """Server CPU and wall-clock bounds of one phase of the load."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.cpu = CpuWindow(processes)
        self.t0 = time.monotonic()
        self.wall0 = time.time()

    def stop(self) -> dict[str, Any]:
        cpu = self.cpu.stop()
        return {
            "start": self.wall0,
            "end": time.time(),
            "seconds": round(time.monotonic() - self.t0, 3),
            "cpu_s": round(sum(cpu.values()), 3),
            "cpu_by_process_s": cpu,
            "peak_rss_mib": self.cpu.rss(),
        }


def _merge_parts(parts: list[dict]) -> dict[str, Any]:
    total: Counter[str] = Counter()
    for part in parts:
        total.update({k: v for k, v in part.items() if isinstance(v, int)})
    return {
        **merge_deliveries(parts),
        "clients": total["clients"],
        "expected": total["expected"],
        "missed_without_resume": total["missed_without_resume"],
        "connects": total["connects"],
        "failures": merge(p["failures"] for p in parts),
    }
