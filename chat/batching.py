"""Posts from the WebSocket sockets of one server process, written in batches.

A post used to be one trip to a database thread and a transaction of its own: about 5 ms of
CPU each, which capped a process near 120 posts/s. Here every socket's post joins the batch
that is gathering; while one batch is in the database, the next one gathers, so a lone post
goes at once and a burst is written with a few statements per room (``actions.post_messages``)
and published with one Redis round trip. Each post still gets its own answer, exactly as
``actions.post_message`` would give it.
"""

from __future__ import annotations

import asyncio
import time

from chat import actions
from contract import events
from infra.db import db
from infra.loops import per_loop
from ops import metrics

MAX_BATCH = 200

Answer = tuple[events.MessageData, bool, int] | actions.ActionError


def _post_and_describe(requests: list[actions.PostRequest]) -> list[Answer]:
    return [
        r
        if isinstance(r, actions.ActionError)
        else (events.message_data(r.message), r.created, r.message.change)
        for r in actions.post_messages(requests)
    ]


class PostBatcher:
    def __init__(self) -> None:
        # (request, its answer, time.monotonic() of its arrival)
        self.waiting: list[tuple[actions.PostRequest, asyncio.Future, float]] = []
        self.writer: asyncio.Task | None = None

    def submit(self, request: actions.PostRequest) -> asyncio.Future:
        """Queue ``request``; the future gives (message, created, change), or raises the
        ActionError that refused it. Requests are written in the order they are submitted."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((request, future, time.monotonic()))
        if self.writer is None:
            self.writer = asyncio.create_task(self._write())
        return future

    async def _write(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                try:
                    answers = await db(_post_and_describe)([request for request, *_ in batch])
                except Exception as exc:  # the database failed: every post of the batch fails
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                answered = time.monotonic()
                for _, _, arrived in batch:
                    metrics.POST_LATENCY.observe(answered - arrived)
                for (_, future, _), answer in zip(batch, answers, strict=True):
                    if future.done():  # its socket has gone meanwhile
                        continue
                    if isinstance(answer, actions.ActionError):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self.writer = None


# This event loop's batcher (one per server process).
batcher = per_loop(PostBatcher)
