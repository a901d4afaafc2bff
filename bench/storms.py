"""The storm scenarios (issue 14): what connecting costs, and what a wave of connects does to the
live traffic of the sockets already connected.

connect_storm   ``storm_sockets`` sockets (one user each) connect at once, from every client
                process, ``storm_lead`` s after one sender started posting at ``storm_rate``
                msg/s: the connects' wall time and server CPU, and the latency of the messages
                sent from 1 s after the first connect (and by window after it).
reconnect_wave  ``storm_sockets`` connected listeners (one user each) all lose their
                connection at once (a network blip: each client aborts its TCP connection, the
                server sees a reset) ``wave_lead`` s after a sender started posting at
                ``wave_rate`` msg/s; each reconnects with the browser client's back-off and
                jitter and resumes (``after_seq``, ``after_change``): the reconnects' wall time
                and server CPU, and the latency of the messages sent during the wave.

Both run on every server of ``--servers`` and database of ``--databases`` (SQLite by default)
and against the raw reference. Every listener must get every message after its first
``sync.done`` once and in order (raw: after its last, since raw has no resume).

CPU per connect: the servers' CPU from the storm (or the drop) until every listener is ready
again, plus storm_load.TAIL_S, less what the same time would have cost without the connects.
That baseline is measured in the same run: in a wave, the lead's CPU per second (the same
listeners and sender, steady); in a storm, the lead's CPU per second (the sender alone) plus
the CPU per delivery of the window after the storm, times the deliveries made during it.
"""

from __future__ import annotations

import math
from typing import Any

from bench.clients import ClientOpts
from bench.load import split
from bench.measure import delivered_between, latency_summary, windowed
from bench.run import Config, Run, client_opts, make_row, safe, target_label
from bench.stack import RawStack
from bench.storm_load import Samples, StormPlan, run_storm

STORM_EDGES = (0, 1, 2, 4, 8, 16, math.inf)  # seconds after the first connect
WAVE_EDGES = (-math.inf, 0, 1, 2, 4, 8, math.inf)  # seconds after the drop


def connect_storm(run: Run) -> list[dict]:
    return _scenario(run, "connect_storm")


def reconnect_wave(run: Run) -> list[dict]:
    return _scenario(run, "reconnect_wave")


def _scenario(run: Run, scenario: str) -> list[dict]:
    rows = []
    for server in run.cfg.servers:
        for database in run.cfg.storm_databases:
            target = f"{target_label(server)} {database}"
            rows.append(safe(lambda s=server, d=database: _once(run, scenario, s, d), target))
    rows.append(safe(lambda: _once(run, scenario, "raw", None), "raw"))
    return rows


def _once(run: Run, scenario: str, server: str, database: str | None) -> dict:
    cfg = run.cfg
    storm = scenario == "connect_storm"
    if server == "raw":
        target = "raw"
        print(f"  {scenario}: raw, {cfg.storm_sockets} sockets ...", flush=True)
        with RawStack(run.out_dir) as raw:
            plan, opts = storm_plan(raw, cfg, "", storm)
            result = run_storm(plan, raw.processes, opts)
    else:
        target = f"{target_label(server)} {database}"
        print(f"  {scenario}: {target}, {cfg.storm_sockets} sockets ...", flush=True)
        stack = run.parley(database or "sqlite", server)
        plan, opts = storm_plan(stack, cfg, scenario.replace("_", "-"), storm)
        result = run_storm(plan, stack.processes, opts)
    extra = {"server": server, "database": database, "sockets": cfg.storm_sockets}
    return make_row(scenario, target, figures(result, storm=storm), rate=opts.rate, **extra)


def storm_plan(stack, cfg: Config, slug: str, storm: bool) -> tuple[StormPlan, ClientOpts]:
    """A storm's (or a wave's) load and client options. On Parley: the public room ``slug``
    (made here) and one new user per socket; raw (``RawStack``): no users, no resume."""
    n = cfg.storm_sockets
    rate, seconds, lead = (
        (cfg.storm_rate, cfg.storm_seconds, cfg.storm_lead)
        if storm
        else (cfg.wave_rate, cfg.wave_seconds, cfg.wave_lead)
    )
    url = stack.ws_url(slug)
    if isinstance(stack, RawStack):
        tokens, sender = [None], {"url": url, "token": None}
    else:
        stack.create_room(slug, stack.tokens[:1])  # public: every user may listen
        tokens = stack.create_socket_users(n, prefix=slug)
        sender = {"url": url, "token": stack.tokens[0]}
    listeners = []
    for i, count in enumerate(split(n, cfg.client_procs)):
        start = sum(split(n, cfg.client_procs)[:i])
        listeners.append(
            {
                "count": count,
                "url": url,
                "tokens": tokens[start : start + count] or tokens,  # raw: [None] for all
                "resume": not isinstance(stack, RawStack),
                "mode": "storm" if storm else "wave",
            }
        )
    plan = StormPlan(listeners=listeners, sender=sender, lead=lead)
    return plan, client_opts(seconds, rate=rate, ready_timeout=180)


def figures(result: dict[str, Any], *, storm: bool) -> dict[str, Any]:
    """The scenario's figures from a run_storm result (its samples reduced to summaries)."""
    samples: Samples = result.pop("samples")
    reports = result.pop("reports")
    windows = result["windows"]
    phase_at = [r["phase_at"] for r in reports if r["phase_at"] is not None]
    last_ready = [r["last_ready_at"] for r in reports if r["last_ready_at"] is not None]
    origin = min(phase_at) if phase_at else windows["phase"]["start"]
    end = max(last_ready) if last_ready else None
    part = result["listeners"]
    connects = part["connects"] - result["connected_before"]
    edges = STORM_EDGES if storm else WAVE_EDGES
    out = {
        **result,
        "phase_seconds": round(end - origin, 3) if end else None,  # connects' wall time
        # when each listener was ready (its sync.done), s after the storm or the drop
        "ready_after_s": {
            k: v if v is None else round(v / 1000, 3)
            for k, v in latency_summary(
                (t - origin) * 1000 for r in reports for t in r.get("ready_ats", [])
            ).items()
            if k != "samples"
        },
        "connects_in_phase": connects,
        **_connect_cpu(windows, samples, connects),
        "latency_by_window": windowed(samples.sent, samples.lat, origin, edges),
        "latency_by_window_ready": windowed(samples.sent, samples.lat, origin, edges, samples.live),
    }
    if storm:  # messages sent from 1 s after the first connect
        out["headline_ms"] = _since(samples, origin + 1)
        out["headline_ready_ms"] = _since(samples, origin + 1, live=True)
    else:  # messages sent during the wave: from the drop until every listener was ready
        out["headline_ms"] = _since(samples, origin, end)
        out["headline_ready_ms"] = _since(samples, origin, end, live=True)
    part["latency_ms"] = out["headline_ms"]
    return out


def _since(samples: Samples, start: float, end: float | None = None, live: bool = False) -> dict:
    """Latency summary of the samples sent in [start, end) (``live``: only those sent after
    their listener's connection was ready)."""
    stop = math.inf if end is None else end
    picked = [
        ms
        for at, ms, ready in zip(samples.sent, samples.lat, samples.live, strict=True)
        if start <= at < stop and (ready or not live)
    ]
    return latency_summary(picked)


def _connect_cpu(windows: dict, samples: Samples, connects: int) -> dict[str, Any]:
    """CPU per connect: the phase window's CPU less the baseline (module docstring)."""
    lead, phase, after = windows["lead"], windows["phase"], windows["after"]

    def deliveries(window: dict) -> int:
        return delivered_between(samples.sent, samples.lat, window["start"], window["end"])

    lead_rate = lead["cpu_s"] / lead["seconds"] if lead["seconds"] else 0.0
    baseline = lead_rate * phase["seconds"]
    per_delivery = None
    if deliveries(lead) == 0:  # a storm: the sender alone; fan-out costs as after the storm
        after_deliveries = deliveries(after)
        if after_deliveries:
            per_delivery = max(0.0, after["cpu_s"] - lead_rate * after["seconds"])
            per_delivery /= after_deliveries
            baseline += per_delivery * deliveries(phase)
    cpu = max(0.0, phase["cpu_s"] - baseline)
    return {
        "connect_cpu_s": round(cpu, 3),
        "connect_baseline_cpu_s": round(baseline, 3),
        "cpu_ms_per_connect": round(cpu / connects * 1000, 3) if connects else None,
        "cpu_ms_per_connect_uncorrected": (
            round(phase["cpu_s"] / connects * 1000, 3) if connects else None
        ),
        "cpu_us_per_delivery_after": (
            round(per_delivery * 1e6, 1) if per_delivery is not None else None
        ),
    }
