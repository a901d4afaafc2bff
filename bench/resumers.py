"""Listeners that reconnect and resume the way Parley's own client does (static/parley/client.js),
for the storm scenarios (bench/storms.py, driven by bench/storm_load.py).

A dropped socket (or a failed attempt) waits before the next attempt: the ceiling starts at
250 ms and doubles up to 15 s, the delay is half the ceiling plus a random half ("equal
jitter"); a ``sync.done`` resets it. Refusals that cannot change by retrying (4400, 4401, 4403,
4404) stop. Against Parley (``resume``) each attempt asks for ``?after_seq=`` the highest seq it
has ``&after_change=`` the change of the last frame that carried one; the raw reference has no
resume, so its clients start from "now" again.

Nothing is filtered on the client's side (client.js drops duplicates; these count them): every
``message.new`` is recorded with its send time (the body's stamp), its latency, and whether it
was sent after the ``sync.done`` of the connection it arrived on ("live": the socket was ready).

Counting, per client: against Parley, every message after its first ``sync.done`` once and in
order, across all its connections; against raw, every message after its last ``sync.done``
(what it missed while away is reported as ``missed_without_resume``).

A client process runs one of two modes, in phases set by the parent (``Control``):
- ``storm``: nothing is open before ``phase``; then every socket connects at once.
- ``wave``: every socket connects before ``ready`` (``connect_concurrency`` at a time); at
  ``phase`` each one's connection is aborted (a network blip: the server sees a reset, the
  client a 1006) and the client reconnects with its back-off.
Each process reports on the ready queue once its sockets are open (wave) or its process is up
(storm), again once every socket is ready after the phase, then its result when drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from array import array
from collections import Counter
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.clients import (
    Activity,
    ClientOpts,
    Control,
    StreamLog,
    describe,
    drain,
    sent_at,
    wait_flag,
)
from bench.measure import stream_stats

MIN_DELAY_S = 0.25  # client.js minDelayMs
MAX_DELAY_S = 15.0  # client.js maxDelayMs
FINAL_CLOSE_CODES = frozenset({4400, 4401, 4403, 4404})  # client.js: retrying cannot help


def backoff_delay(attempt: int, rand: float) -> float:
    """client.js' wait before reconnecting after ``attempt`` failures since the last sync.done
    (``rand`` uniform in [0, 1))."""
    ceiling = min(MAX_DELAY_S, MIN_DELAY_S * 2**attempt)
    return ceiling / 2 + rand * ceiling / 2


class TimedLog(StreamLog):
    """A StreamLog that also keeps, per first receipt, the send time (epoch seconds) and
    whether it was sent after the connection it came on was ready (1) or not (0)."""

    __slots__ = ("sent_s", "live", "ready_at")

    def __init__(self) -> None:
        super().__init__()
        self.sent_s = array("d")
        self.live = bytearray()
        self.ready_at = 0.0  # epoch seconds of this connection's sync.done (0: not yet)

    def record(self, message: dict, now_ns: int) -> None:
        seq = message["seq"]
        if seq in self.seen:
            self.seqs.append(seq)
            return
        super().record(message, now_ns)
        sent = sent_at(message.get("body"))
        if sent is not None:
            self.sent_s.append(sent / 1e9)
            self.live.append(1 if self.ready_at and sent / 1e9 >= self.ready_at else 0)


class Resumer:
    """One client: connects, reads, and reconnects with back-off until stopped."""

    def __init__(self, url: str, token: str | None, resume: bool, activity: Activity) -> None:
        self.url, self.token, self.resume, self.activity = url, token, resume, activity
        self.log = TimedLog()
        # Where the client's stream starts: the seq of its first sync.done, or before the
        # first message that came ahead of it (a fresh socket's catch-up of what was committed
        # while it connected comes before its sync.done, whose seq is past it).
        self.base: int | None = None
        self.early: int | None = None  # the first seq received before the first sync.done
        self.segment = 0  # where the current connection's seqs start in log.seqs
        self.segment_base: int | None = None  # seq of the current connection's sync.done
        self.last_seq: int | None = None
        self.last_change: int | None = None
        self.attempt = 0
        self.connects = 0  # handshakes completed
        self.failures: Counter[str] = Counter()  # failed attempts and connections lost
        self.first_try: float | None = None  # epoch seconds of the first attempt
        self.ready = asyncio.Event()  # set by each sync.done; cleared by a drop
        self.ws: ClientConnection | None = None
        self.dropping = False
        self.stopping = False
        self.gave_up = False  # refused with a final close code

    def endpoint(self) -> str:
        """client.js' ``_endpoint``: the resume position, once the client has one."""
        if not self.resume or self.last_seq is None:
            return self.url
        query = f"?after_seq={self.last_seq}"
        if self.last_change is not None:
            query += f"&after_change={self.last_change}"
        return self.url + query

    async def run(self, timeout: float) -> None:
        while not self.stopping:
            if self.first_try is None:
                self.first_try = time.time()
            try:
                ws = await connect(
                    self.endpoint(),
                    additional_headers={"Authorization": f"Bearer {self.token}"}
                    if self.token
                    else None,
                    compression=None,
                    ping_interval=None,
                    proxy=None,
                    open_timeout=timeout,
                    close_timeout=2,
                    max_size=2**20,
                )
            except Exception as exc:
                self.failures[describe(exc)] += 1
            else:
                code = await self._read(ws)
                if self.stopping:
                    return
                if self.dropping:
                    self.dropping = False  # our own drop: a blip, not a failure
                else:
                    self.failures[f"closed {code}"] += 1
                if code in FINAL_CLOSE_CODES:
                    self.gave_up = True
                    return
            if self.stopping:
                return
            await asyncio.sleep(backoff_delay(self.attempt, random.random()))
            self.attempt += 1

    async def _read(self, ws: ClientConnection) -> int:
        self.ws = ws
        self.connects += 1
        self.log.ready_at = 0.0
        self.segment = len(self.log.seqs)
        try:
            async for data in ws:
                now = time.time_ns()
                self.activity.last_frame = time.monotonic()
                frame = json.loads(data)
                kind = frame.get("type")
                if kind == "message.new":
                    self.log.record(frame["message"], now)
                    seq = frame["message"]["seq"]
                    if self.base is None and self.early is None:
                        self.early = seq
                    self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
                    self.last_change = frame.get("change", self.last_change)
                elif kind in ("message.edited", "message.deleted"):
                    self.last_change = frame.get("change", self.last_change)
                elif kind == "sync.done":
                    self._synced(frame, now)
                else:
                    self.log.other[str(kind)] += 1
        except ConnectionClosed:
            pass
        finally:
            self.ws = None
        return ws.close_code if ws.close_code is not None else 1006

    def _synced(self, frame: dict, now_ns: int) -> None:
        seq = int(frame["seq"])
        if self.base is None:
            self.base = seq if self.early is None else min(seq, self.early - 1)
        self.segment_base = seq
        self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
        self.last_change = frame.get("change")  # None from the raw server
        self.log.ready_at = now_ns / 1e9
        self.attempt = 0
        self.ready.set()

    def drop(self) -> None:
        """A network blip: abort the connection (no closing handshake)."""
        self.ready.clear()
        if self.ws is not None:
            self.dropping = True
            self.ws.transport.abort()

    async def stop(self) -> None:
        self.stopping = True
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3)

    def complete(self, hi: int) -> bool:
        """Whether the client has what it is counted against up to ``hi``."""
        if self.base is None:
            return True  # never ready: counted as not connected
        if self.resume:
            return len(self.log.seen) >= hi - self.base
        return (self.last_seq or 0) >= hi

    def stats(self, hi: int) -> dict[str, int]:
        """stream_stats of what the client is counted against (see the module docstring)."""
        if self.base is None:
            return {}
        if self.resume:
            return stream_stats(self.log.seqs, self.base, hi)
        stats = stream_stats(self.log.seqs[self.segment :], self.segment_base or 0, hi)
        had = sum(1 for seq in self.log.seen if self.base < seq <= hi)
        stats["missed_without_resume"] = hi - self.base - had
        return stats


async def _open_gated(client: Resumer, gate: asyncio.Semaphore, opts: ClientOpts) -> asyncio.Task:
    """Start ``client``; hold a place of ``gate`` until it is ready (or the connect timeout)."""
    async with gate:
        task = asyncio.create_task(client.run(opts.connect_timeout))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.ready.wait(), opts.connect_timeout)
    return task


async def _all_ready(clients: list[Resumer], ctl: Control, timeout: float) -> None:
    """Wait (at most ``timeout``) until every client is ready, but for those refused for good."""
    deadline = time.monotonic() + timeout
    for client in clients:
        while not (client.ready.is_set() or client.gave_up or ctl.abort.is_set()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.ready.wait(), min(0.05, remaining))


def summarize(clients: list[Resumer], hi: int) -> tuple[dict[str, Any], tuple[bytes, ...]]:
    """The process' part of the result, and its samples (send times, latencies, live flags)."""
    totals: Counter[str] = Counter()
    other: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    with_gaps = expected = 0
    sent, lat, live = array("d"), array("d"), bytearray()
    for client in clients:
        failures.update(client.failures)
        other.update(client.log.other)
        if client.base is None:
            continue
        stats = client.stats(hi)
        totals.update(stats)
        with_gaps += stats["lost"] > 0
        lo = client.base if client.resume else (client.segment_base or 0)
        expected += hi - lo
        sent.extend(client.log.sent_s)
        lat.extend(client.log.lat_ms)
        live.extend(client.log.live)
    part = {
        **{k: int(v) for k, v in totals.items()},
        "expected": expected,
        "connected": sum(c.ready.is_set() for c in clients),
        "connects": sum(c.connects for c in clients),
        "failures": dict(failures),
        "closed_by_server": {k: v for k, v in failures.items() if k.startswith("closed")},
        "clients_with_gaps": with_gaps,
        "other_frames": dict(other),
    }
    return part, (sent.tobytes(), lat.tobytes(), bytes(live))


async def resumers(index, spec, ctl: Control, ready_q, result_q, opts: ClientOpts) -> None:
    """A client process of resuming listeners; ``spec``: count, url, tokens (taken in turn),
    resume (bool), mode ("storm" or "wave")."""
    activity = Activity()
    tokens = spec["tokens"]
    clients = [
        Resumer(spec["url"], tokens[i % len(tokens)], spec["resume"], activity)
        for i in range(spec["count"])
    ]
    tasks: list[asyncio.Task] = []
    try:
        if spec["mode"] == "wave":
            gate = asyncio.Semaphore(opts.connect_concurrency)
            tasks = list(await asyncio.gather(*(_open_gated(c, gate, opts) for c in clients)))
        ready = sum(c.ready.is_set() for c in clients)
        failures: Counter[str] = Counter()
        for client in clients:
            failures.update(client.failures)
        ready_q.put(("resumers", index, ready, dict(failures)))
        if not await wait_flag(ctl.go, ctl.abort, opts.ready_timeout):
            return
        if not await wait_flag(ctl.phase, ctl.abort, opts.seconds + opts.ready_timeout):
            return
        cpu0 = time.process_time()
        phase_at = time.time()
        if spec["mode"] == "wave":
            for client in clients:
                client.drop()
        else:
            tasks = [asyncio.create_task(c.run(opts.connect_timeout)) for c in clients]
        await _all_ready(clients, ctl, opts.ready_timeout)
        ready_at = [c.log.ready_at for c in clients if c.ready.is_set()]
        tries = [c.first_try for c in clients if c.first_try is not None]
        ready_q.put(
            (
                "phase",
                index,
                {
                    "phase_at": phase_at if spec["mode"] == "wave" else min(tries, default=None),
                    "last_ready_at": max(ready_at, default=None),
                    "ready_ats": ready_at,
                    "ready": len(ready_at),
                },
            )
        )
        await drain(lambda: all(c.complete(ctl.last.value) for c in clients), activity, ctl, opts)
        cpu = time.process_time() - cpu0
        if ctl.abort.is_set():
            return
        part, samples = summarize(clients, ctl.last.value)
        part.update(clients=len(clients), cpu_s=cpu)
        result_q.put(("resumers", index, part, samples))
        await wait_flag(ctl.finish, ctl.abort, opts.finish_timeout)
    finally:
        await asyncio.gather(*(c.stop() for c in clients))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
