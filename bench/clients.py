"""Load generation: WebSocket listeners, WebSocket senders and REST pollers in client processes.

Each client process runs one asyncio loop with many clients (stdlib + websockets only, no Django).
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
import random
import signal
import time
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.measure import latency_summary, stream_stats


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


async def _drain(logs: list[StreamLog], activity: Activity, ctl: Control, opts: ClientOpts):
    """Return once every client has every confirmed message, or on a time limit."""
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
        want = ctl.last.value - ctl.base.value
        if all(log.closed is not None or len(log.seen) >= want for log in logs):
            return
        if now > drain_deadline or now - activity.last_frame > opts.idle_timeout:
            return


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


def client_main(kind: str, index: int, spec: dict, ctl, ready_q, result_q, opts) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    runner = {"listeners": _listeners, "sender": _sender, "pollers": _pollers}[kind]
    try:
        asyncio.run(runner(index, spec, ctl, ready_q, result_q, opts))
    finally:
        for q in (ready_q, result_q):
            if ctl.abort.is_set():
                # The parent may have stopped reading: never block exit flushing a queue.
                q.cancel_join_thread()
            else:
                # Flush what was put (e.g. a failed connect reported just before exiting):
                # the default at exit, said here because it matters.
                q.close()
                q.join_thread()


async def _listeners(index, spec, ctl: Control, ready_q, result_q, opts: ClientOpts) -> None:
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
        await _drain([log for _, log in live], activity, ctl, opts)
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


async def _sender(index, spec, ctl: Control, ready_q, result_q, opts: ClientOpts) -> None:
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


# --- REST pollers -------------------------------------------------------------------------------


class HttpConn:
    """A minimal keep-alive HTTP/1.1 GET client (Content-Length or chunked bodies)."""

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, timeout: float) -> tuple[int, bytes]:
        return await asyncio.wait_for(self._get(path), timeout)

    async def _get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{auth}\r\n"
        self.writer.write(request.encode())
        reader = self.reader
        assert reader is not None
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await reader.readline()).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readline()
            await reader.readline()
            body = b"".join(parts)
        else:
            body = await reader.read()
            await self.close()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 2)
        self.reader = self.writer = None


async def _pollers(index, spec, ctl: Control, ready_q, result_q, opts: ClientOpts) -> None:
    """Clients that GET <path>?after_seq=N every poll_interval and follow next_after_seq."""
    count, url, token = spec["count"], spec["url"], spec["token"]
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    logs = [StreamLog() for _ in range(count)]
    conns = [HttpConn(host, port, token) for _ in range(count)]
    activity = Activity()
    failures: Counter[str] = Counter()
    request_ms = array("d")
    gate = asyncio.Semaphore(opts.connect_concurrency)
    after: list[int] = [0] * count

    async def first(i: int) -> bool:
        async with gate:
            try:
                status, body = await conns[i].get(f"{path}?limit=1", opts.connect_timeout)
                page = json.loads(body)
                if status != 200:
                    raise RuntimeError(f"HTTP {status}")
                after[i] = page["results"][-1]["seq"] if page["results"] else 0
                return True
            except Exception as exc:
                failures[describe(exc)] += 1
                await conns[i].close()
                return False

    ok = await asyncio.gather(*(first(i) for i in range(count)))
    live = [i for i in range(count) if ok[i]]
    ready_q.put(("pollers", index, len(live), dict(failures)))
    stop = asyncio.Event()

    async def poll(i: int) -> None:
        log, conn = logs[i], conns[i]
        started = time.monotonic() + random.uniform(0, opts.poll_interval)
        tick = 0
        while not stop.is_set() and not ctl.abort.is_set():
            delay = started + tick * opts.poll_interval - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    return
            tick = max(tick + 1, int((time.monotonic() - started) / opts.poll_interval) + 1)
            more = True
            while more and not stop.is_set():
                t0 = time.monotonic()
                try:
                    status, body = await conn.get(
                        f"{path}?after_seq={after[i]}&limit=200", opts.connect_timeout
                    )
                except Exception as exc:
                    log.other[describe(exc)] += 1
                    await conn.close()
                    break
                now = time.time_ns()
                request_ms.append((time.monotonic() - t0) * 1000)
                activity.last_frame = time.monotonic()
                if status != 200:
                    log.other[f"HTTP {status}"] += 1
                    break
                page = json.loads(body)
                for message in page["results"]:
                    log.record(message, now)
                    after[i] = max(after[i], message["seq"])
                more = page.get("next_after_seq") is not None

    tasks: list[asyncio.Task] = []
    try:
        # Polling starts once every client is connected (polls must not slow the others'
        # connects); the parent may measure an idle window before ``go``.
        if not await wait_flag(ctl.ready, ctl.abort, opts.ready_timeout):
            return
        tasks = [asyncio.create_task(poll(i)) for i in live]
        if not await wait_flag(ctl.go, ctl.abort, opts.ready_timeout):
            return
        cpu0 = time.process_time()
        await _drain([logs[i] for i in live], activity, ctl, opts)
        stop.set()
        await asyncio.wait(tasks, timeout=opts.connect_timeout)
        cpu = time.process_time() - cpu0
        if ctl.abort.is_set():
            return
        part, latencies = summarize_logs([logs[i] for i in live], ctl.base.value, ctl.last.value)
        part.update(
            connected=len(live),
            connect_failures=dict(failures),
            cpu_s=cpu,
            requests=len(request_ms),
            request_ms=latency_summary(request_ms),
        )
        result_q.put(("pollers", index, part, latencies))
        await wait_flag(ctl.finish, ctl.abort, opts.finish_timeout)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(conn.close() for conn in conns))
