"""REST pollers: clients that GET the room's history after the last seq they have, every
``poll_interval`` (the alternative to push that the ``idle`` scenario measures)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from array import array
from collections import Counter
from urllib.parse import urlsplit

from bench.clients import (
    Activity,
    ClientOpts,
    Control,
    StreamLog,
    all_confirmed,
    describe,
    drain,
    summarize_logs,
    wait_flag,
)
from bench.measure import latency_summary


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


async def pollers(index, spec, ctl: Control, ready_q, result_q, opts: ClientOpts) -> None:
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
        await drain(all_confirmed([logs[i] for i in live], ctl), activity, ctl, opts)
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
