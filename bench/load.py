"""Running one load: start the client processes (bench/clients.py), measure the servers from
``go`` until every client has drained, and merge what the clients report."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.client_process import client_main
from bench.clients import ClientOpts, Control
from bench.measure import CpuWindow, cpu_seconds, latency_summary, peak_rss


@dataclass
class LoadPlan:
    """Who connects where. Each listener/poller entry is one client process."""

    listeners: list[dict] = field(default_factory=list)  # {"count", "url", "token"}
    senders: list[dict] = field(default_factory=list)  # {"url", "token"}: one socket each
    pollers: list[dict] = field(default_factory=list)  # {"count", "url", "token"}
    # Called in the parent right after every client connected, before ``go`` (e.g. to sleep
    # through an idle window); returns extra figures for the result.
    before_go: Any = None


def split(n: int, parts: int) -> list[int]:
    parts = max(1, min(parts, n)) if n else 1
    return [c for c in (n // parts + (i < n % parts) for i in range(parts)) if c]


def next_item(q, deadline: float, procs: list, what: str):
    """Next item from ``q``, failing fast if a client process died or time ran out."""
    while True:
        dead = [p.name for p in procs if p.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"client process(es) {dead} failed while waiting for {what}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"timed out waiting for {what}")
        with contextlib.suppress(queue.Empty):
            return q.get(timeout=min(0.5, remaining))


def settle(processes: dict[str, int], limit: float = 30.0, busy: float = 0.1) -> float:
    """Wait (at most ``limit`` s) until the servers use under ``busy`` of a core: the previous
    load's teardown (1,000 sockets closing) must not slow this load's connects or figures."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = sum(cpu_seconds(pid) for pid in processes.values())
        time.sleep(0.5)
        if sum(cpu_seconds(pid) for pid in processes.values()) - before < busy * 0.5:
            break
    return round(time.monotonic() - started, 2)


def start_clients(kinds: list[tuple[str, list[dict]]], opts: ClientOpts) -> tuple:
    """Start one client process per spec, for each (kind, specs) of ``kinds``; returns the
    shared (control, ready queue, result queue) and the processes (for ``stop_clients``)."""
    ctx = mp.get_context("spawn")
    ctl = Control.create(ctx)
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(
            target=client_main,
            args=(kind, i, spec, ctl, ready_q, result_q, opts),
            name=f"{kind}-{i}",
            daemon=True,
        )
        for kind, specs in kinds
        for i, spec in enumerate(specs)
    ]
    try:
        for proc in procs:
            proc.start()
    except BaseException:
        stop_clients(procs, ctl)
        raise
    return ctl, ready_q, result_q, procs


def stop_clients(procs: list, ctl: Control) -> None:
    """Let the client processes end (aborting them unless the load finished), then kill any
    that did not."""
    if not ctl.finish.is_set():
        ctl.abort.set()
    procs = [p for p in procs if p.pid is not None]  # started
    for proc in procs:
        proc.join(timeout=15)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)


def wait_ready(procs: list, ready_q, timeout: float) -> tuple[Counter[str], Counter[str]]:
    """Every client process' first report: (clients connected, failures), each by kind."""
    connected: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    waiting = {p.name for p in procs}
    for _ in procs:
        what = f"the clients to connect ({', '.join(sorted(waiting))} not ready)"
        kind, index, ok, failed = next_item(ready_q, deadline, procs, what)
        waiting.discard(f"{kind}-{index}")
        connected[kind] += ok
        failures.update(failed)
    return connected, failures


def run_load(plan: LoadPlan, processes: dict[str, int], opts: ClientOpts) -> dict[str, Any]:
    """Run one load; measure the server processes from ``go`` until every client drained."""
    settle_s = settle(processes)
    started = time.monotonic()
    kinds = [("listeners", plan.listeners), ("pollers", plan.pollers), ("sender", plan.senders)]
    ctl, ready_q, result_q, procs = start_clients(kinds, opts)
    try:
        connected, failures = wait_ready(procs, ready_q, opts.ready_timeout)
        ctl.ready.set()
        connect_s = time.monotonic() - started
        if connected["sender"] < len(plan.senders):
            raise RuntimeError(f"a sender could not connect: {dict(failures)}")
        extra = plan.before_go(processes) if plan.before_go else {}

        cpu = CpuWindow(processes)
        load_before = os.getloadavg()
        window_start = time.monotonic()
        ctl.go.set()
        senders: list[dict] = []
        parts: list[tuple[str, dict]] = []
        latencies = {"listeners": array("d"), "pollers": array("d")}
        deadline = time.monotonic() + opts.seconds + 2 * opts.confirm_timeout
        deadline += opts.drain_timeout + 60
        for _ in procs:
            kind, _, result, raw = next_item(result_q, deadline, procs, "the results")
            if kind == "sender":
                senders.append(result)
                if len(senders) == len(plan.senders):
                    ctl.base.value = min(s["base_seq"] for s in senders)
                    ctl.last.value = max(s["last_seq"] for s in senders)
                    ctl.sent_done.set()
            else:
                parts.append((kind, result))
                latencies[kind].frombytes(raw)
        window_s = time.monotonic() - window_start
        server_cpu = cpu.stop()
        rss = cpu.rss()
        load_after = os.getloadavg()
        ctl.finish.set()
    finally:
        stop_clients(procs, ctl)

    messages = ctl.last.value - ctl.base.value
    out: dict[str, Any] = {
        "settle_seconds": settle_s,  # waiting for the servers to go idle first
        "connect_seconds": round(connect_s, 2),
        "connect_failures": dict(failures),
        "messages": messages,
        "senders": merge_senders(senders),
        "window_seconds": round(window_s, 2),
        "server_cpu_s": round(sum(server_cpu.values()), 3),
        "server_cpu_by_process_s": server_cpu,
        "peak_rss_by_process_mib": rss,  # highest VmRSS sampled in the window
        "lifetime_peak_rss_mib": peak_rss(processes),  # VmHWM since each process started
        "peak_rss_mib": round(sum(v for v in rss.values() if v), 1),
        "client_cpu_s": round(
            sum(p["cpu_s"] for _, p in parts) + sum(s["cpu_s"] for s in senders), 3
        ),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        **extra,
    }
    for kind in ("listeners", "pollers"):
        mine = [p for k, p in parts if k == kind]
        if not mine:
            continue
        n = sum(p["connected"] for p in mine)
        out[kind] = {
            **merge_deliveries(mine),
            "clients": sum(s["count"] for s in getattr(plan, kind)),
            "expected": n * messages,
            "latency_ms": latency_summary(latencies[kind]),
        }
        if kind == "pollers":
            out[kind]["requests"] = sum(p["requests"] for p in mine)
            out[kind]["request_ms_p50_by_process"] = [p["request_ms"]["p50"] for p in mine]
    return out


def merge_deliveries(parts: list[dict]) -> dict[str, Any]:
    """The client processes' delivery figures (bench/clients.py's ``summarize_logs`` parts)
    added up."""
    total: Counter[str] = Counter()
    for part in parts:
        total.update({k: v for k, v in part.items() if isinstance(v, int) and k != "requests"})
    return {
        "connected": total["connected"],
        "received": total["received"],
        "lost": total["lost"],
        "duplicates": total["duplicates"],
        "out_of_order": total["out_of_order"],
        "unexpected_seqs": total["extra"],
        "clients_with_gaps": total["clients_with_gaps"],
        "closed_by_server": merge(p["closed_by_server"] for p in parts),
        "other_frames": merge(p["other_frames"] for p in parts),
        "client_cpu_s": round(sum(p["cpu_s"] for p in parts), 3),
    }


def merge(dicts) -> dict[str, int]:
    merged: Counter[str] = Counter()
    for d in dicts:
        merged.update(d)
    return dict(merged)


def merge_senders(senders: list[dict]) -> dict[str, Any]:
    if not senders:
        return {}
    return {
        "count": len(senders),
        "sent": sum(s["sent"] for s in senders),
        "confirmed": sum(s["confirmed"] for s in senders),
        "refused": merge(s["refused"] for s in senders),
        "send_seconds": round(max(s["send_seconds"] for s in senders), 3),
        "confirm_seconds": round(max(s["confirm_seconds"] for s in senders), 3),
        "max_behind_schedule_s": round(max(s["max_behind_schedule_s"] for s in senders), 3),
        "disconnected": sum(bool(s["disconnected"]) for s in senders),
    }
