"""How many events/s one Redis Stream carries here: the number that would make Parley partition
its topics by room (ARCHITECTURE.md, "what stands before a Cluster").

    .venv/bin/python -m bench streams [--events 60000] [--publishers 1,4]

On a private Redis (loopback TCP, nothing on disk), one stream:
- ``publish``: the relay's publish path (chat/relay.py's Lua script: change guard, XADD, PUBLISH
  of a client frame), pipelined in batches of the relay's ``BATCH``, from 1 and N processes
  (each its own rooms, as relays of several server processes would be).
- ``consume``: a worker's Redis work (XREADGROUP of ``PARLEY_BROKER["BATCH"]`` entries, then one
  XACK of them), without a handler or the database: the ceiling a subscriber cannot pass.
Prints one line per figure and writes bench/results/streams-<time>.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import time

from bench.report import save_results

BODY = "x" * 120  # a short chat message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _event(room: int, change: int) -> str:
    from contract import events

    return events.dumps(
        {
            "id": "00000000-0000-0000-0000-000000000000",
            "topic": events.TOPIC_MESSAGE,
            "type": events.MESSAGE_CREATED,
            "room": f"room-{room}",
            "seq": change,
            "ts": "2026-12-01T10:00:00.000000+00:00",
            "payload": {"version": 1, "change": change, "message": {"body": BODY}},
        }
    )


def _publisher(url: str, worker: int, count: int, start: multiprocessing.Event) -> None:
    """Publish ``count`` events of rooms of its own through the relay's script."""
    from chat import relay
    from contract import events
    from infra.redis_client import connect

    client = connect(url)
    stream = events.stream_key(events.TOPIC_MESSAGE)
    keys = [stream, relay.published_key(stream)]
    frame = _event(0, 0)
    calls = [
        (keys, [worker * 1000 + i % 10, i + 1, f"bench__group__room.{i % 10}", frame, str(i),
                events.MESSAGE_CREATED, _event(i % 10, i + 1)])
        for i in range(count)
    ]  # fmt: skip
    start.wait()
    for first in range(0, count, relay.BATCH):
        relay._execute(client, calls[first : first + relay.BATCH])


def measure_publish(url: str, processes: int, total: int) -> float:
    """Events/s through the publish script into one stream from ``processes`` publishers."""
    start = multiprocessing.Event()
    per = total // processes
    procs = [
        multiprocessing.Process(target=_publisher, args=(url, w, per, start))
        for w in range(processes)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every process build its calls before the clock starts
    t0 = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    return per * processes / (time.perf_counter() - t0)


def measure_consume(url: str, batch: int) -> tuple[float, int]:
    """Events/s of XREADGROUP (``batch``) + XACK over what the stream holds."""
    from contract import events
    from infra.redis_client import connect

    client = connect(url)
    stream = events.stream_key(events.TOPIC_MESSAGE)
    client.xgroup_create(stream, "bench", id="0")
    done = 0
    t0 = time.perf_counter()
    while True:
        response = client.xreadgroup("bench", "w1", {stream: ">"}, count=batch)
        if not response:
            break
        ids = [stream_id for stream_id, _ in response[0][1]]
        client.xack(stream, "bench", *ids)
        done += len(ids)
    return done / (time.perf_counter() - t0), done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench streams")
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--publishers", default="1,4", help="publisher processes, e.g. 1,4")
    args = parser.parse_args(argv)

    from infra.embedded_redis import RedisServer

    server = RedisServer(port=_free_port()).start()
    os.environ["REDIS_URL"] = server.url  # never the embedded default or a shared Redis
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from django.conf import settings

    from infra.redis_client import connect

    batch = settings.PARLEY_BROKER["BATCH"]
    client = connect(server.url)
    results: dict = {"cpus": os.cpu_count(), "loadavg": os.getloadavg(), "events": args.events}
    try:
        for n in [int(x) for x in args.publishers.split(",")]:
            client.flushall()
            empty = client.info("memory")["used_memory"]
            rate = measure_publish(server.url, n, args.events)
            results[f"publish_{n}"] = round(rate)
            print(f"publish (relay script, batches of 200), {n} process(es): {rate:,.0f} events/s")
        rate, read = measure_consume(server.url, batch)
        results["consume"] = round(rate)
        results["consume_batch"] = batch
        print(f"consume (XREADGROUP {batch} + XACK), one worker: {rate:,.0f} events/s ({read})")
        memory = client.info("memory")["used_memory"] - empty
        results["bytes_per_entry"] = round(memory / max(read, 1))
        print(f"memory: ~{results['bytes_per_entry']} bytes per stream entry")
    finally:
        client.close()
        server.stop()
    save_results("streams", results)
    return 0
