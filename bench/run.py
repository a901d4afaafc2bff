"""One benchmark run: its configuration (sizes, servers, databases), the Parley stacks it started,
and the helpers every scenario module shares to describe a load and report a row."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.clients import ClientOpts
from bench.load import LoadPlan, split
from bench.measure import per_1000
from bench.stack import ParleyStack, log_problems

USERS = 8  # signed-up users: user 0 owns the rooms and sends in fan-out; the rest listen


@dataclass
class Config:
    quick: bool
    fanout_sizes: list[int]
    fanout_seconds: float
    throughput_seconds: float
    throughput_databases: list[str]
    idle_clients: int
    idle_seconds: float
    trickle_seconds: float
    scaleout_listeners: int
    catchup_events: int
    storm_sockets: int  # connect_storm and reconnect_wave
    storm_seconds: float  # connect_storm: how long the sender posts (from before the storm)
    wave_seconds: float  # reconnect_wave: how long the sender posts (from before the wave)
    client_procs: int = 4
    fanout_rate: float = 20.0
    throughput_senders: int = 10
    throughput_listeners: int = 10
    storm_databases: list[str] = field(default_factory=lambda: ["sqlite"])
    storm_rate: float = 10.0  # connect_storm's sender, msg/s
    storm_lead: float = 1.0  # the sender posts alone this long before the storm (CPU baseline)
    wave_rate: float = 20.0  # reconnect_wave's sender, msg/s
    wave_lead: float = 2.0  # the sender posts to the connected listeners this long first
    servers: list[str] = field(default_factory=lambda: ["daphne", "uvicorn"])
    # mux (bench/mux.py): one socket x mux_rooms rooms; mux_sockets sockets x mux_per_socket
    mux_rooms: int = 1000
    mux_sockets: int = 1000
    mux_per_socket: int = 10
    mux_posts: int = 5

    @classmethod
    def make(cls, quick: bool, **overrides: Any) -> Config:
        sizes = {name: copy.copy(both[0 if quick else 1]) for name, both in SIZES.items()}
        cfg = cls(quick=quick, **sizes)
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        return cfg


# Config fields by run size: (--quick, full).
SIZES: dict[str, tuple[Any, Any]] = {
    "fanout_sizes": ([10, 100, 500], [10, 100, 500, 1000]),
    "fanout_seconds": (3, 10),
    "throughput_seconds": (4, 10),
    "throughput_databases": (["sqlite"], ["sqlite", "postgres"]),
    "idle_clients": (200, 1000),
    "idle_seconds": (6, 30),
    "trickle_seconds": (3, 10),
    "scaleout_listeners": (200, 1000),
    "catchup_events": (2_000, 100_000),
    "storm_sockets": (200, 1000),
    "storm_seconds": (7, 17),
    "wave_seconds": (7, 15),
    "mux_rooms": (200, 1000),
    "mux_sockets": (100, 1000),
    "servers": (["daphne"], ["daphne", "uvicorn"]),  # --quick: the default server only
}


@dataclass
class Run:
    """Shared state of one benchmark run: the Parley stacks (started on first use)."""

    cfg: Config
    out_dir: Path
    stacks: dict[str, ParleyStack] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)  # of the stacks already stopped

    def parley(self, database: str = "sqlite", server: str = "daphne") -> ParleyStack:
        """The stack on ``database`` served by ``server``; any other stack is stopped first, so
        one stack at a time uses the machine."""
        key = f"{database}-{server}"
        if key not in self.stacks:
            self.close()
            print(f"  starting Parley on {database} with {server} ...", flush=True)
            t0 = time.monotonic()
            stack = ParleyStack(f"parley-{key}", self.out_dir, database=database, server=server)
            try:
                stack.create_users(USERS)
            except BaseException:
                stack.close()
                raise
            self.stacks[key] = stack
            print(f"  Parley ready in {time.monotonic() - t0:.1f}s", flush=True)
        return self.stacks[key]

    def close(self) -> None:
        for stack in self.stacks.values():
            stack.close()
            self.logs.extend(stack.logs)
        self.stacks.clear()

    def log_problems(self) -> dict[str, Any]:
        live = [p for s in self.stacks.values() for p in s.logs]
        return log_problems(self.logs + live)


def client_opts(seconds: float, **kw: Any) -> ClientOpts:
    return ClientOpts(seconds=seconds, **kw)


def make_row(scenario: str, target: str, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A report row: the load's result, with deliveries per second and CPU per 1,000."""
    out = {"scenario": scenario, "target": target, **extra, **result}
    for kind in ("listeners", "pollers"):
        part = result.get(kind)
        if part:
            part["cpu_ms_per_1000_deliveries"] = per_1000(result["server_cpu_s"], part["received"])
            part["deliveries_per_s"] = (
                round(part["received"] / result["window_seconds"], 1)
                if result["window_seconds"]
                else None
            )
    return out


def listener_plan(stack, slug: str, n: int, procs: int, servers: int = 1) -> LoadPlan:
    """``n`` listeners over ``procs`` client processes (the signed-up users but the first take
    turns), and one sender, user 0."""
    tokens = stack.tokens
    listeners = [
        {
            "count": count,
            "url": stack.ws_url(slug, server=i % servers),
            "token": tokens[1 + i % (len(tokens) - 1)] if len(tokens) > 1 else tokens[0],
        }
        for i, count in enumerate(split(n, procs))
    ]
    return LoadPlan(listeners=listeners, senders=[{"url": stack.ws_url(slug), "token": tokens[0]}])


def target_label(server: str) -> str:
    """A Parley row's target: "parley" on daphne (the default server), else "parley <server>"."""
    return "parley" if server == "daphne" else f"parley {server}"


def safe(fn, target: str) -> dict:
    """One measurement; a failure becomes a row with its error, the run goes on."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported in the table and the JSON
        print(f"  ERROR ({target}): {exc}", flush=True)
        return {"target": target, "error": f"{type(exc).__name__}: {exc}"[:2000]}
