"""Quick fan-out check: one sender, N listeners in one room, Parley vs a bare broadcast server.

    .venv/bin/python bench/fanout_quick.py --listeners 100 --rate 20 --seconds 10

For each target (``parley``, then ``raw``) the script starts the server(s), connects N listener
sockets from several client processes (multiprocessing, one asyncio loop each), then one sender
socket posts ``message.send`` at R msg/s for S seconds with its wall-clock send time
(``time.time_ns()``) in the body. Every listener records each ``message.new`` it receives (seq and
receive time) and checks its stream: received vs expected, duplicates, out-of-order, gaps.

- parley: a throwaway SQLite file and a private Redis (config.embedded_redis.RedisServer) in a temp
  dir, ``manage.py migrate``, a user per listener process plus a sender and the room ``bench``
  (created through Django, session cookies from ``Client.force_login``), ONE daphne process
  (optionally ``manage.py relay`` too, --relay), rate limit raised for the sender.
- raw: bench/raw_server.py, a ``websockets`` broadcast server (no Django, no Redis).

Measured: latency send -> receive over every (message, listener) pair; server CPU (utime+stime
of every server process and its descendants, from /proc) during the load window (go -> last
listener drained) and per delivery (everything the servers did in that window, the sender's
posts included, divided by the listeners' deliveries); peak RSS (VmHWM); the client processes'
own CPU. For Parley, Redis' own counters show how often an event crossed Redis (PUBLISH calls per
message, subscribers of the room's group channel, bytes Redis sent per message).

Prints a table and writes the same as JSON to bench/results/fanout-quick-<timestamp>.json (the
daphne log goes next to it). Exit status: 0 ok, 1 a target failed to run, 2 a target lost,
duplicated or reordered messages or refused connections.

Everything runs on loopback; every wait has a time limit; servers and client processes are
stopped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
HOST = "127.0.0.1"
ROOM = "bench"
TARGETS = ("parley", "raw")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Stdlib only (no Django): the private Redis, free ports, children that die with this process.
from config.embedded_redis import RedisServer, _die_with_parent, free_port  # noqa: E402


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# =================================================================================================
# Client side: runs in child processes (stdlib + websockets only).
# =================================================================================================


@dataclass(frozen=True)
class ClientOpts:
    rate: float
    seconds: float
    connect_concurrency: int
    connect_timeout: float
    ready_timeout: float
    confirm_timeout: float
    drain_timeout: float
    idle_timeout: float
    finish_timeout: float = 30.0


@dataclass
class Control:
    """Phase flags shared by the parent and every client process."""

    go: Any  # the parent saw every socket connected: start sending
    sent_done: Any  # the sender is done; base/last hold the seq range it posted
    finish: Any  # the parent took its measurements: close the sockets and exit
    abort: Any  # something failed: stop at once
    base: Any  # seq before the first message (the sender's sync.done)
    last: Any  # seq of the last confirmed message


class SocketLog:
    __slots__ = ("seqs", "seen", "lat_ms", "closed", "other")

    def __init__(self) -> None:
        self.seqs = array("q")  # every message.new seq, in arrival order
        self.seen: set[int] = set()
        self.lat_ms = array("d")  # send -> receive, first receipt of each seq
        self.closed: int | None = None  # close code if the server closed it during the run
        self.other: Counter[str] = Counter()  # frames other than message.new


class Activity:
    def __init__(self) -> None:
        self.last_frame = time.monotonic()
        self.closing = False


async def _open(url: str, cookie: str | None, timeout: float) -> tuple[ClientConnection, int]:
    """Connect and wait for sync.done; return the socket and the seq it reported."""
    ws = await connect(
        url,
        additional_headers={"Cookie": cookie} if cookie else None,
        compression=None,
        ping_interval=None,  # a busy client loop must not time out its own sockets
        proxy=None,  # loopback only, whatever the environment says
        open_timeout=timeout,
        close_timeout=2,
        max_size=2**20,
    )
    try:
        first = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if first.get("type") != "sync.done":
            raise RuntimeError(f"first frame was {first.get('type')!r}, not sync.done")
        return ws, int(first["seq"])
    except BaseException:
        await _close(ws)
        raise


async def _close(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), 3)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        return f"closed {exc.rcvd.code if exc.rcvd else 1006}"
    return f"{type(exc).__name__}: {exc}"[:200]


def _sent_at(body: object) -> int | None:
    if not isinstance(body, str):
        return None
    try:
        stamp = json.loads(body)["t"]
    except (ValueError, TypeError, KeyError):
        return None
    return stamp if isinstance(stamp, int) else None


async def _read(ws: ClientConnection, log: SocketLog, activity: Activity) -> None:
    try:
        async for data in ws:
            now = time.time_ns()
            activity.last_frame = time.monotonic()
            try:
                frame = json.loads(data)
                kind = frame.get("type")
            except (ValueError, AttributeError):
                log.other["unparsable"] += 1
                continue
            if kind != "message.new":
                log.other[str(kind)] += 1
                continue
            message = frame["message"]
            seq = message["seq"]
            log.seqs.append(seq)
            if seq in log.seen:
                continue
            log.seen.add(seq)
            sent = _sent_at(message.get("body"))
            if sent is not None:
                log.lat_ms.append((now - sent) / 1e6)
    except ConnectionClosed:
        pass
    if not activity.closing:
        log.closed = ws.close_code if ws.close_code is not None else 1006


async def _wait_flag(flag: Any, abort: Any, timeout: float) -> bool:
    """Poll a multiprocessing Event from the loop; False on abort or timeout."""
    deadline = time.monotonic() + timeout
    while not flag.is_set():
        if abort.is_set() or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def stream_stats(log: SocketLog, lo: int, hi: int) -> dict[str, int]:
    """Check one listener's stream against the expected seqs lo+1 .. hi."""
    seen: set[int] = set()
    top = lo
    dups = out_of_order = extra = 0
    for seq in log.seqs:
        if seq in seen:
            dups += 1
            continue
        seen.add(seq)
        if not lo < seq <= hi:
            extra += 1
        elif seq < top:
            out_of_order += 1
        top = max(top, seq)
    missing = sorted(set(range(lo + 1, hi + 1)) - seen)
    gap_runs = sum(1 for i, seq in enumerate(missing) if i == 0 or missing[i - 1] != seq - 1)
    return {
        "received": len(seen) - extra,
        "lost": len(missing),
        "duplicates": dups,
        "out_of_order": out_of_order,
        "extra": extra,
        "gap_runs": gap_runs,
    }


def _child_setup(*queues) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    for q in queues:
        # Never block exit flushing a queue the parent stopped reading (after an abort); in a
        # normal run the parent has read everything before it lets children finish.
        q.cancel_join_thread()


def listener_main(index, url, cookie, count, ctl, ready_q, result_q, opts) -> None:
    _child_setup(ready_q, result_q)
    asyncio.run(_listener(index, url, cookie, count, ctl, ready_q, result_q, opts))


async def _listener(index, url, cookie, count, ctl, ready_q, result_q, opts: ClientOpts) -> None:
    logs = [SocketLog() for _ in range(count)]
    activity = Activity()
    failures: Counter[str] = Counter()
    gate = asyncio.Semaphore(opts.connect_concurrency)

    async def open_one() -> ClientConnection | None:
        async with gate:
            if ctl.abort.is_set():
                return None
            try:
                ws, _ = await _open(url, cookie, opts.connect_timeout)
            except Exception as exc:
                failures[_describe(exc)] += 1
                return None
            return ws

    started = time.monotonic()
    opened = await asyncio.gather(*(open_one() for _ in logs))
    live = [(ws, log) for ws, log in zip(opened, logs, strict=True) if ws is not None]
    readers = [asyncio.create_task(_read(ws, log, activity)) for ws, log in live]
    ready_q.put(("listeners", index, len(live), dict(failures), time.monotonic() - started))
    try:
        if not await _wait_flag(ctl.go, ctl.abort, opts.ready_timeout):
            return
        cpu0 = time.process_time()
        await _drain([log for _, log in live], activity, ctl, opts)
        cpu = time.process_time() - cpu0
        if ctl.abort.is_set():
            return
        lo, hi = ctl.base.value, ctl.last.value
        totals: Counter[str] = Counter()
        other: Counter[str] = Counter()
        closed: Counter[str] = Counter()
        with_gaps = 0
        for _, log in live:
            stats = stream_stats(log, lo, hi)
            totals.update(stats)
            with_gaps += stats["lost"] > 0
            other.update(log.other)
            if log.closed is not None:
                closed[str(log.closed)] += 1
        latencies = array("d")
        for _, log in live:
            latencies.extend(log.lat_ms)
        result_q.put(
            (
                "listeners",
                index,
                {
                    "connected": len(live),
                    "connect_failures": dict(failures),
                    "closed_by_server": dict(closed),
                    "listeners_with_gaps": with_gaps,
                    "other_frames": dict(other),
                    "cpu_s": cpu,
                    **totals,
                },
                latencies.tobytes(),
            )
        )
        await _wait_flag(ctl.finish, ctl.abort, opts.finish_timeout)
    finally:
        activity.closing = True
        await asyncio.gather(*(_close(ws) for ws, _ in live))
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def _drain(logs: list[SocketLog], activity: Activity, ctl, opts: ClientOpts) -> None:
    """Return once every socket has every posted message, or on a time limit."""
    deadline = time.monotonic() + opts.seconds + opts.confirm_timeout + opts.drain_timeout
    drain_deadline = None
    while not ctl.abort.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if not ctl.sent_done.is_set():
            continue
        now = time.monotonic()
        if drain_deadline is None:
            drain_deadline = now + opts.drain_timeout
        want = ctl.last.value - ctl.base.value
        if all(log.closed is not None or len(log.seen) >= want for log in logs):
            return
        if now > drain_deadline or now - activity.last_frame > opts.idle_timeout:
            return


def sender_main(url, cookie, ctl, ready_q, result_q, opts) -> None:
    _child_setup(ready_q, result_q)
    asyncio.run(_sender(url, cookie, ctl, ready_q, result_q, opts))


async def _sender(url, cookie, ctl, ready_q, result_q, opts: ClientOpts) -> None:
    try:
        ws, base = await _open(url, cookie, opts.connect_timeout)
    except Exception as exc:
        ready_q.put(("sender", 0, 0, {_describe(exc): 1}, 0.0))
        return
    confirmed: dict[str, int] = {}
    refused: Counter[str] = Counter()
    ours: set[str] = set()

    async def read() -> None:
        try:
            async for data in ws:
                frame = json.loads(data)
                kind = frame.get("type")
                message = frame.get("message") or {}
                if kind == "message.ack" or (
                    kind == "message.new" and message.get("client_id") in ours
                ):
                    confirmed[frame.get("client_id") or message["client_id"]] = message["seq"]
                elif kind == "error":
                    refused[str(frame.get("code"))] += 1
        except ConnectionClosed:
            pass

    reader = asyncio.create_task(read())
    ready_q.put(("sender", 0, 1, {}, 0.0))
    try:
        if not await _wait_flag(ctl.go, ctl.abort, opts.ready_timeout):
            return
        cpu0 = time.process_time()
        total = round(opts.rate * opts.seconds)
        started = time.monotonic()
        behind = 0.0
        sent = 0
        for i in range(total):
            if ctl.abort.is_set() or reader.done():
                break
            delay = started + i / opts.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                behind = max(behind, -delay)
            client_id = str(uuid.uuid4())
            ours.add(client_id)
            body = dumps({"t": time.time_ns(), "i": i})
            await ws.send(dumps({"type": "message.send", "client_id": client_id, "body": body}))
            sent += 1
        send_s = time.monotonic() - started
        if ctl.abort.is_set():
            return
        deadline = time.monotonic() + opts.confirm_timeout
        while len(confirmed) + refused.total() < sent and time.monotonic() < deadline:
            if reader.done():
                break
            await asyncio.sleep(0.02)
        ctl.base.value = base
        ctl.last.value = max(confirmed.values(), default=base)
        ctl.sent_done.set()
        result_q.put(
            (
                "sender",
                0,
                {
                    "sent": sent,
                    "confirmed": len(confirmed),
                    "refused": dict(refused),
                    "base_seq": base,
                    "last_seq": ctl.last.value,
                    "send_seconds": send_s,
                    "max_behind_schedule_s": behind,
                    "disconnected": reader.done(),
                    "cpu_s": time.process_time() - cpu0,
                },
                b"",
            )
        )
        await _wait_flag(ctl.finish, ctl.abort, opts.drain_timeout + opts.finish_timeout)
    finally:
        await _close(ws)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


# =================================================================================================
# Parent side: servers, measurements, report.
# =================================================================================================

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids = [int(p) for p in children.read_text().split()]
                found += kids
                todo += kids
    return found


def cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its reaped children (cutime+cstime) and live descendants."""
    total = 0.0
    for number in [pid, *_descendants(pid)]:
        try:
            stat = Path(f"/proc/{number}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
        total += sum(int(v) for v in fields[11:15]) / CLK_TCK
    return total


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM of ``pid`` plus that of its live descendants."""
    total, found = 0, False
    for number in [pid, *_descendants(pid)]:
        try:
            status = Path(f"/proc/{number}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            total += int(match.group(1))
            found = True
    return total / 1024 if found else None


def wait_port(port: int, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {HOST}:{port} within {timeout}s")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def start_server(args: list[str], env: dict[str, str], log_path: Path, stack) -> subprocess.Popen:
    log = stack.enter_context(open(log_path, "ab"))  # noqa: SIM115 - closed by the stack
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    stack.callback(stop_process, proc)
    return proc


SETUP = r"""
import json, sys
import django
django.setup()
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.test import Client
from chat import actions, events

def cookie(user):
    client = Client()
    client.force_login(user)
    return "sessionid=" + client.cookies["sessionid"].value

User = get_user_model()
sender = User.objects.create_user("bench-sender")
room = actions.create_room(creator=sender, slug=sys.argv[1], title="Fan-out bench")
listeners = []
for i in range(int(sys.argv[2])):
    user = User.objects.create_user(f"bench-listener-{i}")
    actions.join_room(user=user, room=room)
    listeners.append(cookie(user))
group = get_channel_layer().group_channel_name(events.room_group(room.pk))
print("BENCH-SETUP " + json.dumps(
    {"sender": cookie(sender), "listeners": listeners, "room_id": room.pk, "group_channel": group}
))
"""


def run_checked(args: list[str], env: dict[str, str], timeout: float, what: str) -> str:
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


@dataclass
class Target:
    """A started server stack: where clients connect and which processes to measure."""

    url: str
    sender_cookie: str | None
    listener_cookies: list[str | None]
    processes: dict[str, int]
    logs: list[Path] = field(default_factory=list)
    redis: Any = None  # a redis.Redis client for Parley's private Redis
    group_channel: str | None = None


def start_parley(args, tmp: Path, stamp: str, stack) -> Target:
    redis_server = RedisServer(socket_path=tmp / "redis.sock").start()
    stack.callback(redis_server.stop)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "REDIS_URL": redis_server.url,
        "PARLEY_RATE_LIMIT_MESSAGES": "1000000",
        "DEBUG": "false",
        "PYTHONUNBUFFERED": "1",
    }
    python = sys.executable
    run_checked([python, "manage.py", "migrate", "--noinput"], env, 300, "manage.py migrate")
    out = run_checked(
        [python, "-c", SETUP, ROOM, str(args.client_procs)], env, 300, "bench setup script"
    )
    setup = json.loads(next(ln for ln in out.splitlines() if ln.startswith("BENCH-SETUP "))[12:])

    port = free_port()
    daphne_log = RESULTS_DIR / f"fanout-quick-{stamp}-daphne.log"
    daphne = start_server(
        [python, "-m", "daphne", "-b", HOST, "-p", str(port), "config.asgi:application"],
        env,
        daphne_log,
        stack,
    )
    processes = {"daphne": daphne.pid, "redis": redis_server.proc.pid}
    logs = [daphne_log]
    if args.relay:
        relay_log = RESULTS_DIR / f"fanout-quick-{stamp}-relay.log"
        relay = start_server([python, "manage.py", "relay"], env, relay_log, stack)
        processes["relay"] = relay.pid
        logs.append(relay_log)
    wait_port(port, daphne, 60, "daphne")

    import redis

    client = redis.Redis(unix_socket_path=redis_server.socket_path, socket_timeout=5)
    stack.callback(client.close)
    return Target(
        url=f"ws://{HOST}:{port}/ws/rooms/{ROOM}/",
        sender_cookie=setup["sender"],
        listener_cookies=setup["listeners"],
        processes=processes,
        logs=logs,
        redis=client,
        group_channel=setup["group_channel"],
    )


def start_raw(args, tmp: Path, stamp: str, stack) -> Target:
    port = free_port()
    proc = start_server(
        [
            sys.executable,
            str(ROOT / "bench" / "raw_server.py"),
            "--host",
            HOST,
            "--port",
            str(port),
        ],
        {**os.environ, "PYTHONUNBUFFERED": "1"},
        tmp / "raw.log",
        stack,
    )
    wait_port(port, proc, 30, "raw server")
    return Target(
        url=f"ws://{HOST}:{port}/",
        sender_cookie=None,
        listener_cookies=[None] * args.client_procs,
        processes={"raw": proc.pid},
    )


def redis_counters(target: Target) -> dict[str, int]:
    commands = target.redis.info("commandstats")
    stats = target.redis.info("stats")
    clients = target.redis.info("clients")
    numsub = dict(target.redis.pubsub_numsub(target.group_channel))
    return {
        "publish_calls": commands.get("cmdstat_publish", {}).get("calls", 0),
        "net_output_bytes": stats["total_net_output_bytes"],
        "group_subscribers": numsub.get(target.group_channel.encode(), 0),
        "connected_clients": clients["connected_clients"],
    }


def log_problems(paths: list[Path]) -> dict[str, Any]:
    """Warnings, errors and tracebacks in the server logs (access-log lines are skipped)."""
    pattern = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback|Exception)\b")
    lines: list[str] = []
    for path in paths:
        with contextlib.suppress(OSError):
            lines += [
                f"{path.name}: {ln}"
                for ln in path.read_text(errors="replace").splitlines()
                if pattern.search(ln)
            ]
    return {"count": len(lines), "first": lines[:20]}


def percentile(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def _get(q, deadline: float, procs: list, what: str):
    """Next item from ``q``, failing fast if a client process died or time ran out."""
    import queue

    while True:
        dead = [p.name for p in procs if p.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"client process(es) {dead} failed while waiting for {what}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"timed out waiting for {what}")
        with contextlib.suppress(queue.Empty):
            return q.get(timeout=min(0.5, remaining))


def drive(name: str, target: Target, args, opts: ClientOpts, stack) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ctl = Control(
        go=ctx.Event(),
        sent_done=ctx.Event(),
        finish=ctx.Event(),
        abort=ctx.Event(),
        base=ctx.Value("q", 0),
        last=ctx.Value("q", 0),
    )
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    n, k = args.listeners, args.client_procs
    split = [n // k + (i < n % k) for i in range(k)]
    procs = [
        ctx.Process(
            target=listener_main,
            args=(i, target.url, target.listener_cookies[i], count, ctl, ready_q, result_q, opts),
            name=f"listeners-{i}",
            daemon=True,
        )
        for i, count in enumerate(split)
        if count
    ]
    procs.append(
        ctx.Process(
            target=sender_main,
            args=(target.url, target.sender_cookie, ctl, ready_q, result_q, opts),
            name="sender",
            daemon=True,
        )
    )

    def stop_clients() -> None:
        ctl.abort.set()
        for proc in procs:
            proc.join(timeout=10)
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)

    stack.callback(stop_clients)
    started = time.monotonic()
    for proc in procs:
        proc.start()

    # 1. Every socket connects (sync.done received).
    connected = 0
    connect_failures: Counter[str] = Counter()
    deadline = time.monotonic() + opts.ready_timeout
    sender_ready = False
    for _ in procs:
        kind, _, ok, failures, _ = _get(ready_q, deadline, procs, "the sockets to connect")
        connect_failures.update(failures)
        if kind == "sender":
            sender_ready = bool(ok)
        else:
            connected += ok
    if not sender_ready:
        raise RuntimeError(f"the sender could not connect: {dict(connect_failures)}")
    connect_s = time.monotonic() - started
    print(f"  {name}: {connected}/{n} listeners connected in {connect_s:.1f}s", flush=True)

    # 2. Load: go -> the sender is done -> every listener has drained.
    cpu_start = {p: cpu_seconds(pid) for p, pid in target.processes.items()}
    redis_start = redis_counters(target) if target.redis else None
    load_start = os.getloadavg()
    window_start = time.monotonic()
    ctl.go.set()
    sender: dict[str, Any] = {}
    parts: list[dict[str, Any]] = []
    latencies = array("d")
    deadline = time.monotonic() + opts.seconds + opts.confirm_timeout + opts.drain_timeout + 60
    for _ in procs:
        kind, _, result, raw_latencies = _get(result_q, deadline, procs, "the results")
        if kind == "sender":
            sender = result
            print(
                f"  {name}: sent {result['sent']}, confirmed {result['confirmed']} in "
                f"{result['send_seconds']:.1f}s; draining",
                flush=True,
            )
        else:
            parts.append(result)
            latencies.frombytes(raw_latencies)
    window_s = time.monotonic() - window_start
    cpu = {p: cpu_seconds(pid) - cpu_start[p] for p, pid in target.processes.items()}
    cpu_lifetime = {p: cpu_seconds(pid) for p, pid in target.processes.items()}
    rss = {p: peak_rss_mib(pid) for p, pid in target.processes.items()}
    redis_end = redis_counters(target) if target.redis else None
    ctl.finish.set()

    # 3. Summary.
    messages = sender["last_seq"] - sender["base_seq"]
    total = Counter()
    for part in parts:
        total.update({k: v for k, v in part.items() if isinstance(v, int | float)})
    expected = connected * messages
    ordered = sorted(latencies)
    server_cpu = sum(cpu.values())
    result: dict[str, Any] = {
        "target": name,
        "listeners": n,
        "connected": connected,
        "connect_failures": dict(connect_failures),
        "connect_seconds": round(connect_s, 2),
        "msgs_sent": sender["sent"],
        "msgs_confirmed": sender["confirmed"],
        "post_refusals": sender["refused"],
        "sender_max_behind_schedule_s": round(sender["max_behind_schedule_s"], 3),
        "deliveries_expected": expected,
        "deliveries_received": int(total["received"]),
        "lost": int(total["lost"]),
        "duplicates": int(total["duplicates"]),
        "out_of_order": int(total["out_of_order"]),
        "unexpected_seqs": int(total["extra"]),
        "gap_runs": int(total["gap_runs"]),
        "listeners_with_gaps": int(total["listeners_with_gaps"]),
        "closed_by_server": _merge(p["closed_by_server"] for p in parts),
        "other_frames": _merge(p["other_frames"] for p in parts),
        "latency_ms": {
            "samples": len(ordered),
            **{f"p{p}": _round(percentile(ordered, p)) for p in (50, 95, 99)},
            "max": _round(ordered[-1] if ordered else None),
        },
        "window_seconds": round(window_s, 2),
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_by_process_s": {p: round(v, 3) for p, v in cpu.items()},
        "server_cpu_lifetime_s": {p: round(v, 3) for p, v in cpu_lifetime.items()},
        "cpu_us_per_delivery": (
            round(server_cpu / total["received"] * 1e6, 1) if total["received"] else None
        ),
        "peak_rss_mib": round(sum(v for v in rss.values() if v), 1),
        "peak_rss_by_process_mib": {p: v and round(v, 1) for p, v in rss.items()},
        "client_cpu_s": round(total["cpu_s"] + sender["cpu_s"], 3),
        "sender_cpu_s": round(sender["cpu_s"], 3),
        "load_average_before": [round(v, 2) for v in load_start],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    if redis_start and redis_end:
        publishes = redis_end["publish_calls"] - redis_start["publish_calls"]
        out_bytes = redis_end["net_output_bytes"] - redis_start["net_output_bytes"]
        result["redis"] = {
            "publish_calls": publishes,
            "publishes_per_message": round(publishes / messages, 2) if messages else None,
            "bytes_out_per_message": round(out_bytes / messages) if messages else None,
            "group_channel": target.group_channel,
            "group_subscribers": redis_end["group_subscribers"],
            "connected_clients": redis_end["connected_clients"],
        }
    return result


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _merge(dicts) -> dict[str, int]:
    merged: Counter[str] = Counter()
    for d in dicts:
        merged.update(d)
    return dict(merged)


def run_target(name: str, args, opts: ClientOpts, stamp: str) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"fanout-{name}-"))
    target = None
    try:
        with contextlib.ExitStack() as stack:
            starter = start_parley if name == "parley" else start_raw
            target = starter(args, tmp, stamp, stack)
            return drive(name, target, args, opts, stack)
    except Exception as exc:
        return {"target": name, "listeners": args.listeners, "error": f"{exc}"}
    finally:
        if target and target.logs:
            print(f"  {name}: server log {', '.join(str(p) for p in target.logs)}", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)


def with_log_problems(result: dict[str, Any], stamp: str) -> dict[str, Any]:
    if result["target"] == "parley":
        result["server_log_problems"] = log_problems(
            sorted(RESULTS_DIR.glob(f"fanout-quick-{stamp}-*.log"))
        )
    return result


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


COLUMNS: list[tuple[str, Any]] = [
    ("target", lambda r: r["target"]),
    ("listeners", lambda r: r["listeners"]),
    ("conn fail", lambda r: r["listeners"] - r["connected"]),
    ("msgs sent", lambda r: r["msgs_sent"]),
    ("expected", lambda r: r["deliveries_expected"]),
    ("received", lambda r: r["deliveries_received"]),
    ("lost", lambda r: r["lost"]),
    ("dup", lambda r: r["duplicates"]),
    ("ooo", lambda r: r["out_of_order"]),
    ("p50 ms", lambda r: _fmt(r["latency_ms"]["p50"])),
    ("p95 ms", lambda r: _fmt(r["latency_ms"]["p95"])),
    ("p99 ms", lambda r: _fmt(r["latency_ms"]["p99"])),
    ("max ms", lambda r: _fmt(r["latency_ms"]["max"])),
    ("srv CPU s", lambda r: _fmt(r["server_cpu_s"], 2)),
    ("µs/deliv", lambda r: _fmt(r["cpu_us_per_delivery"])),
    ("RSS MiB", lambda r: _fmt(r["peak_rss_mib"])),
    ("cli CPU s", lambda r: _fmt(r["client_cpu_s"], 2)),
]


def table(results: list[dict[str, Any]]) -> str:
    head = [name for name, _ in COLUMNS]
    rows = [[str(get(r)) for _, get in COLUMNS] for r in results if "error" not in r]
    widths = [max(len(cell) for cell in column) for column in zip(head, *rows, strict=True)]
    lines = [" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines[:0] = [
        " | ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    return "\n".join(lines)


def ratios(results: list[dict[str, Any]]) -> dict[str, float | None]:
    by = {r["target"]: r for r in results if "error" not in r}
    if "parley" not in by or "raw" not in by:
        return {}

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 1) if a is not None and b else None

    p, r = by["parley"], by["raw"]
    return {
        "p99": ratio(p["latency_ms"]["p99"], r["latency_ms"]["p99"]),
        "cpu_per_delivery": ratio(p["cpu_us_per_delivery"], r["cpu_us_per_delivery"]),
    }


def details(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['target']}: ERROR {r['error']}")
            continue
        cpu = ", ".join(f"{p} {v:.2f}s" for p, v in r["server_cpu_by_process_s"].items())
        rss = ", ".join(f"{p} {_fmt(v)}" for p, v in r["peak_rss_by_process_mib"].items())
        lines.append(f"{r['target']}: server CPU {cpu} over {r['window_seconds']}s; RSS MiB {rss}")
        if r["server_cpu_s"] < 20 / CLK_TCK:
            lines.append(f"{r['target']}: CPU is counted in {1000 / CLK_TCK:g} ms ticks: too few")
        if "redis" in r:
            red = r["redis"]
            lines.append(
                f"{r['target']}: Redis PUBLISH per message {red['publishes_per_message']}, "
                f"bytes out per message {red['bytes_out_per_message']}, subscribers of "
                f"{red['group_channel']}: {red['group_subscribers']}, "
                f"Redis clients {red['connected_clients']}"
            )
        issues = {
            "connect failures": r["connect_failures"],
            "closed by server": r["closed_by_server"],
            "post refusals": r["post_refusals"],
            "unexpected frames": r["other_frames"],
            "unexpected seqs": r["unexpected_seqs"],
            "listeners with gaps": r["listeners_with_gaps"],
        }
        shown = {k: v for k, v in issues.items() if v}
        if shown:
            lines.append(f"{r['target']}: PROBLEMS {shown}")
        if r.get("server_log_problems", {}).get("count"):
            logp = r["server_log_problems"]
            lines.append(f"{r['target']}: {logp['count']} warning/error lines in the server logs:")
            lines += [f"    {ln[:200]}" for ln in logp["first"][:5]]
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=100, help="listener sockets (N)")
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second (R)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of sending (S)")
    parser.add_argument(
        "--client-procs", type=int, default=2, help="listener processes (one user each)"
    )
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated subset")
    parser.add_argument("--relay", action="store_true", help="also run `manage.py relay`")
    parser.add_argument("--connect-concurrency", type=int, default=25, help="per process")
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="per socket")
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="all sockets")
    parser.add_argument("--confirm-timeout", type=float, default=30.0, help="sender's acks")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="after the last ack")
    parser.add_argument(
        "--idle-timeout", type=float, default=5.0, help="stop draining after this long silent"
    )
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(TARGETS)
    if unknown or not args.targets:
        parser.error(f"--targets: choose from {', '.join(TARGETS)}")
    if args.listeners < 1 or args.rate <= 0 or args.seconds <= 0 or args.client_procs < 1:
        parser.error("--listeners, --rate, --seconds and --client-procs must be positive")
    args.client_procs = min(args.client_procs, args.listeners)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    opts = ClientOpts(
        rate=args.rate,
        seconds=args.seconds,
        connect_concurrency=args.connect_concurrency,
        connect_timeout=args.connect_timeout,
        ready_timeout=args.ready_timeout,
        confirm_timeout=args.confirm_timeout,
        drain_timeout=args.drain_timeout,
        idle_timeout=args.idle_timeout,
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    print(
        f"fan-out: {args.listeners} listeners in {args.client_procs} processes, one sender at "
        f"{args.rate:g} msg/s for {args.seconds:g}s; targets {', '.join(args.targets)}",
        flush=True,
    )
    results = []
    for name in args.targets:
        results.append(with_log_problems(run_target(name, args, opts, stamp), stamp))
    summary = ratios(results)
    report = {
        "started": stamp,
        "config": {
            **vars(args),
            "client_opts": asdict(opts),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "note": "figures are noisy when other work shares the machine (see load averages)",
        },
        "results": results,
        "parley_over_raw": summary,
    }
    out = RESULTS_DIR / f"fanout-quick-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    print()
    print(table(results))
    if summary:
        print(
            f"\nparley/raw: p99 x{_fmt(summary['p99'])}, "
            f"CPU per delivery x{_fmt(summary['cpu_per_delivery'])}"
        )
    for line in details(results):
        print(line)
    print(f"\nJSON: {out}")

    if any("error" in r for r in results):
        return 1
    bad = [
        r["target"]
        for r in results
        if r["lost"] or r["duplicates"] or r["out_of_order"] or r["connected"] < r["listeners"]
    ]
    if bad:
        print(f"delivery problems in: {', '.join(bad)}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
