"""Where a connect's server CPU goes: connect storms on one Parley stack, profiled.

    .venv/bin/python -m bench connect-profile [--server daphne] [--database sqlite]
                                              [--sockets 1000] [--rounds 2] [--mode storm|wave]

Runs ``--rounds`` storms (bench/storms.py's loads: ``--sockets`` sockets, one user each, and a
sender) on one stack while ``py-spy record --gil`` samples the ASGI server (the thread holding
the GIL, 200 Hz) and /proc counts the CPU of each of its threads. Each sample goes to the first
step of ``STEPS`` whose pattern its stack matches; a step's milliseconds per connect are its
share of its thread group's samples (the event loop's, or the database threads') times that
group's measured CPU, over the connects (in a wave: the first connects and the reconnects).
GIL samples miss what runs without the GIL (SQLite's own work, in the database threads):
scaling by the threads' CPU spreads it over their steps in proportion. Steps that are not the
connect's own (the sender's posts, their fan-out, disconnects, periodic work) are listed apart.
The other processes' CPU (relay, workers, Redis) comes from the storm's phase window.

Prints a table; writes ``profile-<mode>.json`` and the raw profiles under
bench/results/<time>-profile/. A machine busy with other work inflates the event loop's
samples (a thread holding the GIL while it waits for a core): the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.run import Config, Run
from bench.stack import ROOT
from bench.storm_load import run_storm
from bench.storms import figures, storm_plan

PY_SPY = Path(sys.executable).with_name("py-spy")

# A frame of Parley's own code (its packages).
_PROJECT = r"\((chat|config|accounts|ops|realtime|web|contract|infra|database|broker|analytics)/"

# (step, part of the connect?, pattern on the sample's stack): the first match wins.
STEPS: list[tuple[str, bool, str]] = [
    ("posting (the sender's messages)", False, r"chat/batching\.py|post_messages"),
    ("fan-out of live messages", False, r"chat/hub\.py|_fan_out|_on_room_event"),
    ("presence refresher (periodic)", False, r"_Refresher"),
    ("disconnects", False, r"websocket_disconnect|release_socket|depart|_go_offline"),
    ("daphne's per-second checks of every connection", False, r"application_checker|timeout_ch"),
    ("relay publish of user.connected (on commit)", True, r"flush_after_commit"),
    ("presence row (outbox INSERT, transaction)", True, r"record_connection"),
    ("cap, presence coalescing, online set (one Redis round trip)", True, r"chat/arrival\.py"),
    ("presence batch writer (loop side)", True, r"infra/batches\.py"),
    ("token lookup, last_used_at UPDATE", True, r"token_for"),
    ("token last_used_at flush (timer thread, batched)", True, r"flush_last_used"),
    ("session lookup", True, r"_session_user"),
    ("room and membership read", True, r"room_for_user"),
    ("resume: room position read", True, r"room_position"),
    ("resume: edits query (empty when current)", True, r"changes_after"),
    ("resume: catch-up of messages", True, r"messages_after"),
    ("socket cap (Redis script)", True, r"admit_socket"),
    ("access gate registration", True, r"_enter_gate"),
    ("waiting for a connect turn", True, r"take_turn|receive_ahead"),
    ("online set, presence signal (Redis)", True, r"_go_online"),
    ("sync.done and accept frames", True, r"sync_done|\baccept \("),
    ("consumer: other connect steps", True, r"RoomConsumer\.|ListeningConsumer\.|chat/delivery"),
    ("ASGI entry: origin check, routing, scope", True, r"Application\.__call__"),
    ("database thread hand-off (no query)", True, r"^thread \(\d+\): parley-db"),
    ("unmatched project code (update STEPS)", True, _PROJECT),
    ("handshake and event loop (server, Twisted, autobahn, asyncio)", True, r"."),
]


# The servers' own entry points and HTTP hooks, on every stack of theirs: not the connect's steps.
_SERVER_FRAMES = re.compile(
    r"[^;]*\((config|realtime)/(daphne_server|uvicorn_server|uvicorn_http)\.py:\d+\)"
)


def classify(stack: str) -> tuple[str, bool]:
    """(step, part of the connect?) of one sample's stack."""
    stack = _SERVER_FRAMES.sub("", stack)
    for name, connect, pattern in STEPS:
        if re.search(pattern, stack):
            return name, connect
    raise AssertionError("the last step matches everything")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of ``pid``."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def tally(paths: list[Path], main_tid: int) -> Counter[tuple[str, str]]:
    """GIL samples by (step, "loop" or "db") from py-spy's raw output."""
    samples: Counter[tuple[str, str]] = Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            group = "loop" if stack.startswith(f"thread ({main_tid})") else "db"
            samples[(classify(stack)[0], group)] += int(count)
    return samples


def table(samples: Counter, cpu: dict[str, float], connects: int) -> list[dict]:
    """Milliseconds per connect by step (each group's samples scaled to its measured CPU)."""
    per_group = Counter()
    for (_, group), n in samples.items():
        per_group[group] += n
    rows: dict[str, dict] = {}
    for (step, group), n in samples.items():
        ms = n / per_group[group] * cpu[group] / connects * 1000
        row = rows.setdefault(step, {"step": step, "loop_ms": 0.0, "db_ms": 0.0})
        row[f"{group}_ms"] += ms
    connect_steps = {name for name, connect, _ in STEPS if connect}
    total = sum(r["loop_ms"] + r["db_ms"] for r in rows.values() if r["step"] in connect_steps)
    for r in rows.values():
        r["connect"] = r["step"] in connect_steps
        r["ms"] = round(r["loop_ms"] + r["db_ms"], 3)
        r["percent"] = round(100 * r["ms"] / total, 1) if r["connect"] and total else None
        r["loop_ms"], r["db_ms"] = round(r["loop_ms"], 3), round(r["db_ms"], 3)
    return sorted(rows.values(), key=lambda r: (not r["connect"], -r["ms"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench connect-profile")
    parser.add_argument("--server", default="daphne", choices=["daphne", "uvicorn"])
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mode", default="storm", choices=["storm", "wave"])
    args = parser.parse_args(argv)
    out_dir = ROOT / "bench" / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}-profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()}", flush=True)
    cfg = Config.make(False, servers=[args.server], storm_sockets=args.sockets)
    run = Run(cfg, out_dir)
    paths: list[Path] = []
    cpu = {"loop": 0.0, "db": 0.0}
    others: Counter[str] = Counter()
    connects = 0
    try:
        stack = run.parley(args.database, args.server)
        server = f"{args.server}0"
        pid = stack.processes[server]
        for r in range(args.rounds):
            plan, opts = storm_plan(stack, cfg, f"profile-{args.mode}-{r}", args.mode == "storm")
            path = out_dir / f"{args.mode}-{r}-{server}.txt"
            spy = subprocess.Popen(
                [PY_SPY, "record", "--gil", "-r", "200", "-f", "raw", "--threads"]
                + ["-p", str(pid), "-o", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # py-spy attached
            before = thread_cpu(pid)
            result = run_storm(plan, stack.processes, opts)
            after = thread_cpu(pid)
            spy.send_signal(signal.SIGINT)  # writes what it sampled
            spy.wait(timeout=60)
            paths.append(path)
            for tid, seconds in after.items():
                cpu["loop" if tid == pid else "db"] += seconds - before.get(tid, 0.0)
            found = figures(result, storm=args.mode == "storm")
            connects += found["listeners"]["connects"]  # a wave's first connects too
            for name, seconds in found["windows"]["phase"]["cpu_by_process_s"].items():
                if name != server:
                    others[name] += seconds
            print(
                f"  round {r}: {found['connects_in_phase']} connects in "
                f"{found['phase_seconds']} s, {found['cpu_ms_per_connect']} ms CPU each",
                flush=True,
            )
    finally:
        run.close()
    rows = table(tally(paths, pid), cpu, connects)
    other_ms = {k: round(v / connects * 1000, 3) for k, v in others.items()}
    print(f"\n{args.server} on {args.database}, {connects} connects ({args.mode}); load average "
          f"{os.getloadavg()}; thread CPU s: {cpu}")  # fmt: skip
    print(f"{'step':64} | loop ms | db ms | ms/connect | % of connect")
    for r in rows:
        share = "" if r["percent"] is None else f"{r['percent']:.1f}"
        print(
            f"{r['step']:64} | {r['loop_ms']:7.3f} | {r['db_ms']:5.3f} | {r['ms']:10.3f} | {share}"
        )
    print(f"other processes, ms per connect (phase window, with the sender's share): {other_ms}")
    report = {"args": vars(args), "connects": connects, "thread_cpu_s": cpu, "steps": rows}
    report["other_processes_ms_per_connect"] = other_ms
    (out_dir / f"profile-{args.mode}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"JSON: {out_dir / f'profile-{args.mode}.json'}")
    return 0
