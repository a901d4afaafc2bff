"""WebSocket clients that behave as static/parley/client.js does across server restarts: on any
close (or a failed connect) they reconnect with back-off, resume with ``after_seq`` and
``after_change``, and the sender re-sends its unacknowledged posts after ``sync.done``.

They count everything: each ``message.new`` a listener was sent (duplicates and order are for
the test to check), each close code seen (1006 when the connection ended without a close
frame), each failed connect.
"""

from __future__ import annotations

import asyncio
import json
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
        self.failed_connects = 0
        self.synced = asyncio.Event()  # set at each sync.done (cleared on a close)
        self.delay = 0.05

    async def connect(self):
        """Connect, resuming; retries (back-off, as the browser client) until it succeeds."""
        while True:
            query = f"?after_seq={self.last_seq}"
            if self.last_change is not None:
                query += f"&after_change={self.last_change}"
            try:
                return await websockets.connect(
                    self.url + query, additional_headers=self.headers, open_timeout=10
                )
            except CONNECT_ERRORS:
                self.failed_connects += 1
                # The client's back-off between attempts (not a test waiting for something).
                await asyncio.sleep(self.delay)
                self.delay = min(self.delay * 2, 1.0)

    def track(self, frame: dict) -> None:
        """The resume rule: the highest seq, and the change of the last frame carrying one."""
        if frame["type"] == "message.new":
            self.last_seq = max(self.last_seq, frame["message"]["seq"])
            if "change" in frame:
                self.last_change = frame["change"]
        elif frame["type"] == "sync.done":
            self.last_seq = max(self.last_seq, frame["seq"])
            self.last_change = frame["change"]
            self.delay = 0.05
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
        while not self.finished():
            ws = await self.connect()
            try:
                while not self.finished():
                    frame = await _recv_until(ws, self.done)
                    if frame is None:
                        continue  # finish() was called: check whether we are there
                    if frame["type"] == "message.new":
                        self.seqs.append(frame["message"]["seq"])
                    self.track(frame)
            except websockets.ConnectionClosed:
                self.closes.append(closed_code(ws))
                self.synced.clear()
                continue
            await ws.close()


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
        while True:
            ws = await self.connect()
            synced = False
            next_post = loop.time()
            try:
                while not (self.stop.is_set() and not self.unacked()):
                    wait = max(0.0, next_post - loop.time()) if synced else None
                    try:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), wait))
                    except TimeoutError:
                        frame = None  # time for the next post
                    if frame is not None:
                        self.track(frame)
                        if frame["type"] == "sync.done" and not synced:
                            synced = True
                            for client_id in self.unacked():  # as client.js does
                                await self._post(ws, client_id)
                        elif frame["type"] == "message.ack":
                            await self._acked(frame)
                        elif frame["type"] == "error":
                            self.refused.append(frame)
                    if synced and not self.stop.is_set() and loop.time() >= next_post:
                        client_id = str(uuid.uuid4())
                        self.sent[client_id] = f"post {len(self.sent) + 1}"
                        await self._post(ws, client_id)
                        next_post += self.every
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


async def _recv_until(ws, done: asyncio.Event) -> dict | None:
    """The next frame, or None as soon as ``done`` is set (ws.recv() is safe to cancel)."""
    if done.is_set():
        return json.loads(await ws.recv())
    recv = asyncio.ensure_future(ws.recv())
    stopped = asyncio.ensure_future(done.wait())
    await asyncio.wait({recv, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if recv.done():
        return json.loads(recv.result())
    recv.cancel()
    return None
