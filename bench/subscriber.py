"""What a subscriber's worker spends per event: the analytics worker on a connect storm's events.

    .venv/bin/python -m bench subscriber [--sockets 1000] [--rounds 3] [--profile FILE]

On a private Redis and a fresh SQLite database (or ``DATABASE_URL``, a PostgreSQL database of
the run's own: its analytics tables are emptied first), each round XADDs ``--sockets``
``user.connected`` and then as many ``user.disconnected`` events (one session each, as the
relay writes them) to the presence stream and runs the real broker Worker of ``analytics``
(``step()``, in this process) until it has applied them all. Prints the worker's CPU per event
(process CPU time of the steps; the dashboard push runs on a timer thread and sees no listener)
per round, with the load average, and writes bench/results/subscriber-<time>.json.
``--profile FILE`` writes a cProfile of all rounds' steps (``python -m pstats FILE``).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import socket
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.report import save_results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _storm(client, sockets: int) -> int:
    """XADD a storm's presence events: every socket's connect, then every disconnect."""
    from contract import events

    start = datetime.now(UTC)
    sessions = [(uuid.uuid4().hex, f"user{i}", f"room{i % 20}") for i in range(sockets)]
    pipe = client.pipeline(transaction=False)
    for type_, offset in ((events.USER_CONNECTED, 0), (events.USER_DISCONNECTED, 5)):
        for i, (session, user, room) in enumerate(sessions):
            ts = start + timedelta(seconds=offset, microseconds=i)
            event = events.connection(type_, room=room, user=user, session=session, ts=ts)
            fields = {"id": event["id"], "type": type_, "event": events.dumps(event)}
            pipe.xadd(events.stream_key(events.TOPIC_PRESENCE), fields)
    pipe.execute()
    return 2 * sockets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench subscriber")
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of the worker's steps here")
    args = parser.parse_args(argv)

    from infra.embedded_redis import RedisServer

    tmp = Path(tempfile.mkdtemp(prefix="parley-subscriber-"))
    server = RedisServer(port=_free_port()).start()
    os.environ["REDIS_URL"] = server.url  # never the embedded default or a shared Redis
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'db.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["DEBUG"] = "false"  # as bench/stack.py runs Parley: no query log
    import django

    django.setup()
    import threading

    from django.core.management import call_command
    from django.db import connection

    from analytics.models import BehaviourRecord, ConnectionSession, RoomMinute
    from broker import groups, registry
    from broker.models import ProcessedEvent
    from broker.worker import Worker
    from infra.redis_client import connect

    call_command("migrate", "--noinput", verbosity=0)
    for model in (BehaviourRecord, ConnectionSession, RoomMinute):
        model.objects.all().delete()
    ProcessedEvent.objects.filter(subscriber="analytics").delete()
    client = connect(server.url)
    sub = registry.get("analytics")
    groups.ensure_groups(client, [sub])
    worker = Worker(sub, stop=threading.Event(), consumer="bench")
    worker.linger = 0  # measure the work, not the wait for a fuller batch
    profile = cProfile.Profile() if args.profile else None
    per_event: list[float] = []
    try:
        worker.step()  # heartbeat, reclaim and the first queries: not the storm's cost
        for n in range(args.rounds):
            total = _storm(client, args.sockets)
            done_before = ProcessedEvent.objects.filter(subscriber="analytics").count()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if profile:
                profile.enable()
            while _behind(client):
                worker.step()
            if profile:
                profile.disable()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            done = ProcessedEvent.objects.filter(subscriber="analytics").count() - done_before
            assert done == total, f"applied {done} of {total}"
            per_event.append(cpu / total * 1000)
            print(
                f"round {n + 1}: {total} events, worker CPU {cpu * 1000:.0f} ms "
                f"({per_event[-1]:.3f} ms/event), wall {wall * 1000:.0f} ms"
            )
        closed = ConnectionSession.objects.filter(duration_s__isnull=False).count()
        assert closed == args.sockets * args.rounds, f"{closed} sessions closed"
    finally:
        worker.redis.close()
        client.close()
        connection.close()
        server.stop()
    if profile:
        profile.dump_stats(args.profile)
        print(f"profile -> {args.profile}")
    results = {
        "database": connection.vendor,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "sockets": args.sockets,
        "batch": worker.batch,
        "cpu_ms_per_event": [round(x, 4) for x in per_event],
        "median_cpu_ms_per_event": round(statistics.median(per_event), 4),
    }
    print(
        f"{connection.vendor}: median {results['median_cpu_ms_per_event']:.3f} ms of worker CPU "
        f"per event (batches of {worker.batch}); load average {os.getloadavg()[0]:.2f}"
    )
    save_results("subscriber", results)
    return 0


def _behind(client) -> int:
    """Entries of the presence stream the analytics group has not read or not acknowledged."""
    from contract import events

    key = events.stream_key(events.TOPIC_PRESENCE)
    last = client.xinfo_stream(key)["last-generated-id"]
    for group in client.xinfo_groups(key):
        if group["name"] in (b"analytics", "analytics"):
            return group["pending"] or group["last-delivered-id"] != last
    raise LookupError("no analytics group on the presence stream")
