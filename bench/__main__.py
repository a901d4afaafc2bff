"""Parley's benchmarks: push against polling and against the raw WebSocket limit.

    .venv/bin/python -m bench streams   (events/s one Redis Stream carries: bench/streams.py)
    .venv/bin/python -m bench connect-profile   (where a connect's CPU goes: connect_profile.py)
    .venv/bin/python -m bench floor   (a connect's least CPU on daphne and uvicorn: bench/floor.py)
    .venv/bin/python -m bench subscriber   (analytics worker CPU per event: bench/subscriber.py)
    .venv/bin/python -m bench [--quick] [--servers daphne,uvicorn] [--databases sqlite,postgres]
        [--scenarios fanout,throughput,idle,scaleout,catchup,connect_storm,reconnect_wave,mux]

(`make bench`, `make bench-quick`.) Starts Parley the documented way (daphne, and uvicorn as the
measured option; a private Redis and database, the relay and the subscribers' workers; see
bench/stack.py), drives real WebSocket and
HTTP clients from several processes (bench/clients.py) and a bare `websockets` server
(bench/raw_server.py) as the reference in the same run. Prints a table per scenario and writes
bench/results/<timestamp>/report.json, latency.png and every server's log.

Exit status: 0 ok, 1 a measurement failed to run, 2 messages were lost, duplicated, reordered or
refused, or the exactly-once check failed. Loopback only; every wait is bounded; every server and
client process is stopped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/__main__.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from bench.run import Config, Run  # noqa: E402
from bench.scenarios import DEFAULT_SCENARIOS, QUICK_SCENARIOS, RUNNERS, SCENARIOS  # noqa: E402
from bench.stack import ROOT  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under two minutes")
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated: {','.join(SCENARIOS)} (default all but mux; --quick: nor scaleout)",
    )
    parser.add_argument("--fanout-sizes", help="comma-separated listener counts, e.g. 1000")
    parser.add_argument("--fanout-seconds", type=float)
    parser.add_argument(
        "--databases",
        help="databases of throughput (default sqlite,postgres; --quick: sqlite) and of the "
        "storms (default sqlite): sqlite,postgres",
    )
    parser.add_argument("--idle-clients", type=int)
    parser.add_argument("--scaleout-listeners", type=int)
    parser.add_argument("--catchup-events", type=int)
    parser.add_argument("--storm-sockets", type=int, help="connect_storm, reconnect_wave")
    parser.add_argument("--mux-rooms", type=int, help="mux: rooms on one socket (1000)")
    parser.add_argument("--mux-sockets", type=int, help="mux: sockets following 10 rooms (1000)")
    parser.add_argument("--client-procs", type=int, help="client processes per load (4)")
    parser.add_argument(
        "--servers",
        help="ASGI servers to measure Parley on: daphne,uvicorn (default both; --quick: daphne)",
    )
    args = parser.parse_args(argv)
    default = QUICK_SCENARIOS if args.quick else DEFAULT_SCENARIOS
    args.scenarios = [s.strip() for s in (args.scenarios or ",".join(default)).split(",")]
    args.scenarios = [s for s in args.scenarios if s]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown or not args.scenarios:
        parser.error(f"--scenarios: choose from {', '.join(SCENARIOS)}")
    if args.fanout_sizes:
        args.fanout_sizes = sorted(int(n) for n in args.fanout_sizes.split(","))
    if args.servers:
        args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
        if not args.servers or set(args.servers) - {"daphne", "uvicorn"}:
            parser.error("--servers: daphne and/or uvicorn")
    if args.databases:
        args.databases = [d.strip() for d in args.databases.split(",")]
        if set(args.databases) - {"sqlite", "postgres"}:
            parser.error("--databases: sqlite and/or postgres")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["streams"]:  # events/s one Redis Stream carries (bench/streams.py)
        from bench import streams

        return streams.main(argv[1:])
    if argv[:1] == ["subscriber"]:  # a subscriber worker's CPU per event (bench/subscriber.py)
        from bench import subscriber

        return subscriber.main(argv[1:])
    if argv[:1] == ["floor"]:  # the least a connect costs on the servers (bench/floor.py)
        from bench import floor

        return floor.main(argv[1:])
    if argv[:1] == ["connect-profile"]:  # where a connect's CPU goes (bench/connect_profile.py)
        from bench import connect_profile

        return connect_profile.main(argv[1:])
    args = parse_args(argv)
    cfg = Config.make(
        args.quick,
        fanout_sizes=args.fanout_sizes,
        fanout_seconds=args.fanout_seconds,
        throughput_databases=args.databases,
        storm_databases=args.databases,
        idle_clients=args.idle_clients,
        scaleout_listeners=args.scaleout_listeners,
        catchup_events=args.catchup_events,
        storm_sockets=args.storm_sockets,
        mux_rooms=args.mux_rooms,
        mux_sockets=args.mux_sockets,
        client_procs=args.client_procs,
        servers=args.servers,
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = RESULTS_DIR / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"bench {'--quick ' if cfg.quick else ''}{','.join(args.scenarios)} -> {out_dir}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    run = Run(cfg, out_dir)
    started = time.monotonic()
    results: dict[str, list] = {}
    try:
        for name in args.scenarios:
            t0 = time.monotonic()
            print(f"== {name}", flush=True)
            results[name] = RUNNERS[name](run)
            for row in results[name]:
                row.setdefault("scenario", name)
            print(f"== {name} done in {time.monotonic() - t0:.0f}s", flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping every process", flush=True)
    finally:
        log_problems = run.log_problems()
        run.close()
    rows = [row for name in results for row in results[name]]
    data = {
        "started": stamp,
        "seconds": round(time.monotonic() - started, 1),
        "config": vars(cfg),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_after": os.getloadavg(),
            "note": "figures are noisy when other work shares the machine (see load averages)",
        },
        "server_log_problems": log_problems,
        "results": results,
    }
    json_path = out_dir / "report.json"
    report.write_json(json_path, data)
    png = report.plot(rows, out_dir / "latency.png")
    storm_png = report.plot_storms(rows, out_dir / "storms.png")

    print()
    for name, scenario_rows in results.items():
        print(f"--- {name}")
        print(report.table(scenario_rows, name))
        print()
    issues = report.problems(rows)
    for line in issues:
        print(f"PROBLEM {line}")
    if log_problems["count"]:
        print(f"{log_problems['count']} warning/error lines in the server logs, first ones:")
        for line in log_problems["first"][:10]:
            print(f"    {line[:220]}")
    plots = [str(p) for p in (png, storm_png) if p]
    print(f"\nJSON: {json_path}" + (f"\nplots: {', '.join(plots)}" if plots else ""))
    print(f"total {time.monotonic() - started:.0f}s")
    if any("error" in r for r in rows) or len(results) < len(args.scenarios):
        return 1
    return 2 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
