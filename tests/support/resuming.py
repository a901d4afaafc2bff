"""WebSocket clients that behave as static/parley/client.js does across server restarts: on any
close (or a failed connect) they reconnect with back-off, resume with ``after_seq`` and
``after_change``, and the sender re-sends its unacknowledged posts after ``sync.done``.

They count everything: each ``message.new`` a listener was sent (duplicates and order are for
the test to check), each close code seen (1006 when the connection ended without a close
frame), each failed connect.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import uuid

import websockets

CONNECT_ERRORS = (OSError, TimeoutError, websockets.InvalidHandshake)


def closed_code(ws) -> int:
    """The code of the close frame the server sent, or 1006 (none: the connection was cut)."""
    rcvd = ws.protocol.close_rcvd
    return rcvd.code if rcvd is not None else 1006


class ResumingClient:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.last_seq = 0
        self.last_change: int | None = None
        self.closes: list[int] = []
        self.failed_connects: collections.Counter = collections.Counter()  # by status/error
        self.synced = asyncio.Event()  # set at each sync.done (cleared on a close)
        self.delay = 0.25

    async def connect(self, first: bool = False):
        """Connect, resuming; as the browser client, after a jittered back-off (none for the
        first connection), retried until it succeeds."""
        while True:
            if not first:
                # The client's back-off (client.js: half to all of 250 ms, doubling on each
                # failure), not a test waiting for something.
                await asyncio.sleep(self.delay / 2 + random.random() * self.delay / 2)  # noqa: S311
            first = False
            query = f"?after_seq={self.last_seq}"
            if self.last_change is not None:
                query += f"&after_change={self.last_change}"
            try:
                return await websockets.connect(
                    self.url + query, additional_headers=self.headers, open_timeout=10
                )
            except CONNECT_ERRORS as exc:
                response = getattr(exc, "response", None)
                self.failed_connects[response.status_code if response else type(exc).__name__] += 1
                self.delay = min(self.delay * 2, 2.0)

    def track(self, frame: dict) -> None:
        """The resume rule: the highest seq, and the change of the last frame carrying one."""
        if frame["type"] == "message.new":
            self.last_seq = max(self.last_seq, frame["message"]["seq"])
            if "change" in frame:
                self.last_change = frame["change"]
        elif frame["type"] == "sync.done":
            self.last_seq = max(self.last_seq, frame["seq"])
            self.last_change = frame["change"]
            self.delay = 0.25
            self.synced.set()


class Listener(ResumingClient):
    """Reads until it has seen seq ``final`` (set by the test once the sender is done)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(url, headers)
        self.seqs: list[int] = []  # every message.new received, in arrival order
        self.final: int | None = None
        self.done = asyncio.Event()

    def finish(self, final: int) -> None:
        self.final = final
        self.done.set()

    def finished(self) -> bool:
        return self.final is not None and self.last_seq >= self.final

    async def run(self) -> None:
        told = asyncio.ensure_future(self.done.wait())  # finish() was called
        try:
            first = True
            while not self.finished():
                ws, first = await self.connect(first), False
                try:
                    await self._read(ws, told)
                except websockets.ConnectionClosed:
                    self.closes.append(closed_code(ws))
                    self.synced.clear()
                    continue
                await ws.close()
        finally:
            told.cancel()

    async def _read(self, ws, told: asyncio.Future) -> None:
        """Read until finished. A read is never cancelled while the socket is used (a frame
        could be lost): it is awaited beside ``told`` and kept for the next round."""
        recv = None
        try:
            while not self.finished():
                if recv is None:
                    recv = asyncio.ensure_future(ws.recv())
                await asyncio.wait({recv, told}, return_when=asyncio.FIRST_COMPLETED)
                if not recv.done():
                    continue  # told to finish: check whether we are there
                frame, recv = json.loads(recv.result()), None
                if frame["type"] == "message.new":
                    self.seqs.append(frame["message"]["seq"])
                self.track(frame)
        finally:
            if recv is not None:
                recv.cancel()  # finished (or failing): nothing more is read from this socket


class Sender(ResumingClient):
    """Posts ``per_second`` messages while ``posting``; re-sends unacknowledged posts after
    every reconnect; ends once told to stop and every post is acked."""

    def __init__(self, url: str, headers: dict[str, str], per_second: float) -> None:
        super().__init__(url, headers)
        self.every = 1 / per_second
        self.sent: dict[str, str] = {}  # client_id -> body, in the order first sent
        self.acked: dict[str, int] = {}  # client_id -> seq
        self.refused: list[dict] = []
        self.stop = asyncio.Event()
        self.acked_count = asyncio.Condition()

    def unacked(self) -> list[str]:
        """Posts not answered yet (an ack, or an error naming the post, as client.js counts)."""
        answered = {frame.get("client_id") for frame in self.refused}
        return [c for c in self.sent if c not in self.acked and c not in answered]

    async def wait_acked(self, count: int) -> None:
        async with self.acked_count:
            await self.acked_count.wait_for(lambda: len(self.acked) >= count)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        first = True
        while True:
            ws, first = await self.connect(first), False
            synced = False
            next_post = loop.time()
            try:
                while not (self.stop.is_set() and not self.unacked()):
                    if synced and not self.stop.is_set() and loop.time() >= next_post:
                        client_id = str(uuid.uuid4())
                        self.sent[client_id] = f"post {len(self.sent) + 1}"
                        await self._post(ws, client_id)
                        next_post += self.every
                        continue
                    # Read until the next post is due (> 0 s: a zero timeout never reads).
                    posting = synced and not self.stop.is_set()
                    wait = next_post - loop.time() if posting else None
                    try:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), wait))
                    except TimeoutError:
                        continue  # time for the next post
                    self.track(frame)
                    if frame["type"] == "sync.done" and not synced:
                        synced = True
                        for client_id in self.unacked():  # as client.js does
                            await self._post(ws, client_id)
                    elif frame["type"] == "message.ack":
                        await self._acked(frame)
                    elif frame["type"] == "error":
                        self.refused.append(frame)
            except websockets.ConnectionClosed:
                self.closes.append(closed_code(ws))
                continue
            await ws.close()
            return

    async def _post(self, ws, client_id: str) -> None:
        body = self.sent[client_id]
        await ws.send(json.dumps({"type": "message.send", "body": body, "client_id": client_id}))

    async def _acked(self, frame: dict) -> None:
        async with self.acked_count:
            self.acked[frame["client_id"]] = frame["message"]["seq"]
            self.acked_count.notify_all()
