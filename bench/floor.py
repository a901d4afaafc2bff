"""The floor of a connect's server CPU on Parley's ASGI servers, against the raw reference.

    .venv/bin/python -m bench floor [--sockets 1000] [--rounds 3]

Starts raw's server (bench/raw_server.py, ``RawStack``) and daphne and uvicorn exactly as
Parley runs them (realtime/servers.py), serving the floor apps of bench/floor_app.py instead of
Parley: ``asgi`` (accept, send ``sync.done``: the server's own handshake and frame) and
``db_read`` (the same after one read through Django's database thread, the least an
authenticated connect does).
Each round, for each target in turn, opens ``--sockets`` sockets at once from this process
(all in flight together, like a connect storm), waits for every ``sync.done``, and counts the
server process's CPU from the first connect to 0.5 s after the last; then closes them and
lets the server settle. Prints each target's CPU per connect per round, the medians and each
median's ratio to raw's; writes bench/results/floor-<time>.json.

What it answers: a ratio target for CPU per connect ("≤ Nx raw") cannot be met by an
application on a server whose bare ``asgi`` floor is already at or above it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from bench.clients import close_socket, open_socket
from bench.measure import cpu_seconds
from bench.report import save_results
from bench.stack import HOST, ROOT, RawStack, Stack, wait_port
from infra.embedded_redis import RedisServer, free_port
from realtime import servers

LEVELS = ("asgi", "db_read")


class FloorStack(Stack):
    """One process per (server, floor app), all started at once (raw's is ``RawStack``)."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__("floor", log_dir)
        self.targets: dict[str, tuple[str, int]] = {}  # name -> (url, pid)
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        redis = RedisServer(socket_path=self.tmp / "redis.sock").start()
        self._cleanups.append(redis.stop)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DATABASE_URL": f"sqlite:///{self.tmp / 'db.sqlite3'}",
            "REDIS_URL": redis.url,
            "DEBUG": "false",
            "PYTHONUNBUFFERED": "1",
        }
        for server in servers.SERVERS:
            for level in LEVELS:
                port = free_port()
                args = [
                    f"bench.floor_app:{level}" if arg == servers.APPLICATION else arg
                    for arg in servers.command(server, HOST, port, access_log=False)
                ]
                proc = self.spawn(f"{server}-{level}", args, env)
                wait_port(port, proc, 60, f"{server} {level}")
                self.targets[f"{server} {level}"] = (f"ws://{HOST}:{port}/", proc.pid)


async def _round(url: str, pid: int, sockets: int) -> float:
    """One storm on one target: the server's CPU milliseconds per connect."""
    before = cpu_seconds(pid)
    opened = await asyncio.gather(*(open_socket(url, None, 60) for _ in range(sockets)))
    await asyncio.sleep(0.5)  # what the server does right after the last connect counts too
    spent = cpu_seconds(pid) - before
    await asyncio.gather(*(close_socket(ws) for ws, _ in opened))
    await asyncio.sleep(2)  # the server handles the disconnects before the next storm
    return spent * 1000 / sockets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench floor")
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    log_dir = ROOT / "bench" / "results" / f"floor-logs-{time.strftime('%Y%m%d-%H%M%S')}"
    log_dir.mkdir(parents=True, exist_ok=True)
    per_round: dict[str, list[float]] = {}
    with RawStack(log_dir) as raw, FloorStack(log_dir) as floor:
        targets = {"raw": (raw.ws_url(""), raw.processes["raw"]), **floor.targets}
        for i in range(args.rounds):
            for name, (url, pid) in targets.items():
                ms = asyncio.run(_round(url, pid, args.sockets))
                per_round.setdefault(name, []).append(round(ms, 3))
                print(f"round {i + 1}: {name:16} {ms:7.3f} ms CPU per connect", flush=True)
    medians = {name: statistics.median(values) for name, values in per_round.items()}
    raw = medians["raw"]
    print(f"\n{'target':16} {'median ms':>10} {'x raw':>7}   rounds")
    for name, median in medians.items():
        print(f"{name:16} {median:10.3f} {median / raw:7.2f}   {per_round[name]}")
    save_results(
        "floor",
        {
            "sockets": args.sockets,
            "rounds": args.rounds,
            "load_average": os.getloadavg(),
            "ms_cpu_per_connect": per_round,
            "median_ms": medians,
            "ratio_to_raw": {name: round(m / raw, 2) for name, m in medians.items()},
        },
    )
    return 0
