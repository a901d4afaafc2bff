"""Work of every socket of one server process, done in batches on a database thread.

A socket's write used to be one trip to a database thread and a transaction of its own. A
``Batcher`` gathers what the process' sockets submit: while one batch is in the database, the
next one gathers, so a lone item goes at once and a burst is written together (one hop, one
transaction). Each item still gets its own answer. Posts (chat.batching) and connection events
(chat.presence) are written this way; each has one batcher per event loop (``infra.loops``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from infra.db import db

MAX_BATCH = 200

T = TypeVar("T")


class Batcher(Generic[T]):
    """Items are handed to ``write`` (run on a database thread) in the order they were
    submitted, at most ``MAX_BATCH`` at a time, one batch at a time. ``write`` returns one
    answer per item, in order; an answer that is an exception is raised by the item's future.
    ``answered`` is called with each item's seconds from submit to answer."""

    def __init__(
        self,
        write: Callable[[list[T]], list],
        *,
        answered: Callable[[float], object] | None = None,
    ) -> None:
        self.write = write
        self.answered = answered
        # (item, its answer, time.monotonic() of its arrival)
        self.waiting: list[tuple[T, asyncio.Future, float]] = []
        self.writer: asyncio.Task | None = None

    def submit(self, item: T) -> asyncio.Future:
        """Queue ``item``; the future gives its answer, or raises (its own refusal, or the
        database's error, which fails every item of the batch)."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future, time.monotonic()))
        if self.writer is None:
            self.writer = asyncio.create_task(self._write())
        return future

    async def _write(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                try:
                    answers = await db(self.write)([item for item, *_ in batch])
                except Exception as exc:  # the database failed: every item of the batch fails
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                if self.answered is not None:
                    now = time.monotonic()
                    for _, _, arrived in batch:
                        self.answered(now - arrived)
                for (_, future, _), answer in zip(batch, answers, strict=True):
                    if future.done():  # its socket has gone meanwhile
                        continue
                    if isinstance(answer, BaseException):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self.writer = None
