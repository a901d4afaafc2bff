"""Load generation: WebSocket listeners and senders, and what every kind of client shares.

Each client process (bench/client_process.py) runs one asyncio loop with many clients (stdlib +
websockets only, no Django): the listeners and senders here, REST pollers (bench/pollers.py) or
listeners that reconnect and resume (bench/resumers.py).
Every message body carries the sender's wall-clock send time ``{"t": time.time_ns(), "i": n}``;
every client records each message it receives (seq, receive time) and checks its own stream
(received, lost, duplicated, out of order) against the seq range the senders had confirmed.

The parent side (starting these processes, measuring the servers) is bench/load.py. Phases,
shared through a :class:`Control`: every client connects and reports ready -> the parent
sets ``go`` -> senders send (at a rate, or closed-loop with a window of unacknowledged posts) ->
the parent collects the senders' results, publishes the confirmed seq range and sets ``sent_done``
-> listeners and pollers drain (bounded) and report -> ``finish`` lets them close.
Every wait is bounded; ``abort`` stops everything at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.measure import stream_stats


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ClientOpts:
    seconds: float  # how long senders send
    rate: float | None = None  # per sender, msg/s; None: as fast as the server acknowledges
    window: int = 16  # closed loop: unacknowledged posts per sender
    max_messages: int | None = None  # per sender
    poll_interval: float = 1.0
    connect_concurrency: int = 50
    connect_timeout: float = 30.0
    ready_timeout: float = 180.0
    confirm_timeout: float = 30.0
    drain_timeout: float = 30.0
    idle_timeout: float = 5.0  # stop draining after this long without a frame
    finish_timeout: float = 30.0


@dataclass
class Control:
    ready: Any  # every client connected: pollers start polling (the idle window comes next)
    go: Any
    sent_done: Any
    finish: Any
    abort: Any
    phase: Any  # storms (bench/storm_load.py): the storm starts, or the wave drops every socket
    base: Any  # seq before the first message
    last: Any  # seq of the last confirmed message

    @classmethod
    def create(cls, ctx) -> Control:
        return cls(
            ready=ctx.Event(),
            go=ctx.Event(),
            sent_done=ctx.Event(),
            finish=ctx.Event(),
            abort=ctx.Event(),
            phase=ctx.Event(),
            base=ctx.Value("q", 0),
            last=ctx.Value("q", 0),
        )


class StreamLog:
    """What one client (socket or poller) received."""

    __slots__ = ("seqs", "seen", "lat_ms", "closed", "other")

    def __init__(self) -> None:
        self.seqs = array("q")  # every message seq, in arrival order
        self.seen: set[int] = set()
        self.lat_ms = array("d")  # send -> receive, first receipt of each seq
        self.closed: str | None = None  # why the server side ended it during the run
        self.other: Counter[str] = Counter()  # frames other than message.new, HTTP errors

    def record(self, message: dict, now_ns: int) -> None:
        seq = message["seq"]
        self.seqs.append(seq)
        if seq in self.seen:
            return
        self.seen.add(seq)
        sent = sent_at(message.get("body"))
        if sent is not None:
            self.lat_ms.append((now_ns - sent) / 1e6)


class Activity:
    def __init__(self) -> None:
        self.last_frame = time.monotonic()
        self.closing = False


def sent_at(body: object) -> int | None:
    if not isinstance(body, str):
        return None
    try:
        stamp = json.loads(body)["t"]
    except (ValueError, TypeError, KeyError):
        return None
    return stamp if isinstance(stamp, int) else None


def describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        return f"closed {exc.rcvd.code if exc.rcvd else 1006}"
    return f"{type(exc).__name__}: {exc}"[:200]


def _headers(token: str | None) -> dict[str, str] | None:
    return {"Authorization": f"Bearer {token}"} if token else None


# --- WebSocket clients ----------------------------------------------------------------------------


async def open_socket(url: str, token: str | None, timeout: float) -> tuple[ClientConnection, int]:
    """Connect and wait for sync.done; return the socket and the seq it reported."""
    ws = await connect(
        url,
        additional_headers=_headers(token),
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
        await close_socket(ws)
        raise


async def close_socket(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), 3)


async def _read(ws: ClientConnection, log: StreamLog, activity: Activity) -> None:
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
            if kind == "message.new":
                log.record(frame["message"], now)
            else:
                log.other[str(kind)] += 1
    except ConnectionClosed:
        pass
    if not activity.closing:
        log.closed = f"ws {ws.close_code if ws.close_code is not None else 1006}"


async def wait_flag(flag: Any, abort: Any, timeout: float) -> bool:
    """Poll a multiprocessing Event from the loop; False on abort or timeout."""
    deadline = time.monotonic() + timeout
    while not flag.is_set():
        if abort.is_set() or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def drain(
    complete: Callable[[], bool], activity: Activity, ctl: Control, opts: ClientOpts
) -> None:
    """Return once the senders are done and ``complete()`` (every client has every confirmed
    message), or on a time limit (also: no frame for ``idle_timeout``)."""
    deadline = time.monotonic() + opts.seconds + 2 * opts.confirm_timeout + opts.drain_timeout
    drain_deadline = None
    while not ctl.abort.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if not ctl.sent_done.is_set():
            continue
        now = time.monotonic()
        if drain_deadline is None:
            drain_deadline = now + opts.drain_timeout
            activity.last_frame = max(activity.last_frame, now)
        if complete():
            return
        if now > drain_deadline or now - activity.last_frame > opts.idle_timeout:
            return


def all_confirmed(logs: list[StreamLog], ctl: Control) -> Callable[[], bool]:
    """``drain``'s test for clients counted against the senders' whole seq range."""

    def complete() -> bool:
        want = ctl.last.value - ctl.base.value
        return all(log.closed is not None or len(log.seen) >= want for log in logs)

    return complete


def summarize_logs(logs: list[StreamLog], lo: int, hi: int) -> tuple[dict[str, Any], bytes]:
    totals: Counter[str] = Counter()
    other: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    with_gaps = 0
    latencies = array("d")
    for log in logs:
        stats = stream_stats(log.seqs, lo, hi)
        totals.update(stats)
        with_gaps += stats["lost"] > 0
        other.update(log.other)
        if log.closed is not None:
            closed[log.closed] += 1
        latencies.extend(log.lat_ms)
    part = {
        **{k: int(v) for k, v in totals.items()},
        "closed_by_server": dict(closed),
        "clients_with_gaps": with_gaps,
        "other_frames": dict(other),
    }
    return part, latencies.tobytes()


async def listeners(index, spec, ctl: Control, ready_q, result_q, opts: ClientOpts) -> None:
    count, url, token = spec["count"], spec["url"], spec["token"]
    logs = [StreamLog() for _ in range(count)]
    activity = Activity()
    failures: Counter[str] = Counter()
    gate = asyncio.Semaphore(opts.connect_concurrency)

    async def open_one() -> ClientConnection | None:
        async with gate:
            if ctl.abort.is_set():
                return None
            try:
                ws, _ = await open_socket(url, token, opts.connect_timeout)
            except Exception as exc:
                failures[describe(exc)] += 1
                return None
            return ws

    opened = await asyncio.gather(*(open_one() for _ in logs))
    live = [(ws, log) for ws, log in zip(opened, logs, strict=True) if ws is not None]
    readers = [asyncio.create_task(_read(ws, log, activity)) for ws, log in live]
    ready_q.put(("listeners", index, len(live), dict(failures)))
    try:
        if not await wait_flag(ctl.go, ctl.abort, opts.ready_timeout):
            return
        cpu0 = time.process_time()
        logs = [log for _, log in live]
        await drain(all_confirmed(logs, ctl), activity, ctl, opts)
        cpu = time.process_time() - cpu0
        if ctl.abort.is_set():
            return
        part, latencies = summarize_logs([log for _, log in live], ctl.base.value, ctl.last.value)
        part.update(connected=len(live), connect_failures=dict(failures), cpu_s=cpu)
        result_q.put(("listeners", index, part, latencies))
        await wait_flag(ctl.finish, ctl.abort, opts.finish_timeout)
    finally:
        activity.closing = True
        await asyncio.gather(*(close_socket(ws) for ws, _ in live))
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def sender(index, spec, ctl: Control, ready_q, result_q, opts: ClientOpts) -> None:
    url, token = spec["url"], spec["token"]
    for attempt in range(5):  # daphne drops a handshake not accepted within 5 s (busy server)
        try:
            ws, base = await open_socket(url, token, opts.connect_timeout)
            break
        except Exception as exc:
            if attempt == 4 or ctl.abort.is_set():
                ready_q.put(("sender", index, 0, {describe(exc): 1}))
                return
            await asyncio.sleep(1)
    confirmed: dict[str, int] = {}
    refused: Counter[str] = Counter()
    pending: set[str] = set()
    window = asyncio.Semaphore(opts.window)

    def settle(client_id: str | None) -> None:
        if client_id in pending:
            pending.discard(client_id)
            window.release()

    async def read() -> None:
        try:
            async for data in ws:
                frame = json.loads(data)
                kind = frame.get("type")
                message = frame.get("message") or {}
                cid = frame.get("client_id") or message.get("client_id")
                if kind == "message.ack" or (kind == "message.new" and cid in pending):
                    confirmed[cid] = message["seq"]
                    settle(cid)
                elif kind == "error":
                    refused[str(frame.get("code"))] += 1
                    settle(cid)
        except ConnectionClosed:
            pass

    reader = asyncio.create_task(read())
    ready_q.put(("sender", index, 1, {}))
    try:
        if not await wait_flag(ctl.go, ctl.abort, opts.ready_timeout):
            return
        cpu0 = time.process_time()
        started = time.monotonic()
        stop_at = started + opts.seconds
        limit = opts.max_messages if opts.max_messages is not None else 10**9
        if opts.rate:
            limit = min(limit, round(opts.rate * opts.seconds))
        behind = 0.0
        sent = 0
        while sent < limit and not ctl.abort.is_set() and not reader.done():
            if opts.rate:
                delay = started + sent / opts.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    behind = max(behind, -delay)
            else:
                if time.monotonic() >= stop_at:
                    break
                try:  # closed loop: wait for room in the window (bounded)
                    await asyncio.wait_for(window.acquire(), max(0.01, stop_at - time.monotonic()))
                except TimeoutError:
                    break
            client_id = str(uuid.uuid4())
            pending.add(client_id)  # (at a fixed rate, releasing the window is harmless)
            body = dumps({"t": time.time_ns(), "i": sent})
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
        result_q.put(
            (
                "sender",
                index,
                {
                    "sent": sent,
                    "confirmed": len(confirmed),
                    "refused": dict(refused),
                    "base_seq": base,
                    "last_seq": max(confirmed.values(), default=base),
                    "send_seconds": send_s,
                    "confirm_seconds": time.monotonic() - started,
                    "max_behind_schedule_s": behind,
                    "disconnected": reader.done(),
                    "cpu_s": time.process_time() - cpu0,
                },
                b"",
            )
        )
        await wait_flag(ctl.finish, ctl.abort, opts.drain_timeout + 2 * opts.finish_timeout)
    finally:
        await close_socket(ws)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
