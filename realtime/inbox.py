"""The small asyncio primitives each connection holds for its whole life: ``Inbox``, the queue of
ASGI events a server hands the application's ``receive``, and ``Flag``, an event a sender waits
on while the socket's write buffer is full.

Both servers make these per connection from asyncio's ``Queue`` and ``Event``. An empty
``collections.deque`` allocates its first 64-slot block at once (760 bytes with the object), an
``asyncio.Queue`` holds three of them and an ``Event`` with a fourth: 3.3 KiB a connection for
the queue, 1 KiB for the event, kept by every idle socket (tracemalloc, the benchmark's ``idle``
scenario; a raw WebSocket costs ~13.5 KiB of RSS in all). These keep the same semantics in a few
hundred bytes: a list, and waiters made only while someone waits.

Semantics kept, because code relies on them: FIFO order; a ``get`` cancelled after it was woken
leaves the item for the next reader (chat.consumers.direct cancels a read-ahead); ``wait``
returns True once the flag is set; an instance is always truthy (daphne tests
``if self.application_queue:``). Where they are installed: realtime.daphne_server and
realtime.uvicorn_ws.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any


class Inbox:
    """An unbounded FIFO queue for asyncio: ``put_nowait``, ``get``, ``get_nowait``, ``empty``,
    ``qsize``, as ``asyncio.Queue`` has them."""

    __slots__ = ("_items", "_getters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._wake_next()

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    async def get(self) -> Any:
        while not self._items:
            self._getters, getter = _add_waiter(self._getters)
            try:
                await getter
            except BaseException:
                getter.cancel()  # in case it was not done
                if self._items and not getter.cancelled():
                    self._wake_next()  # woken, then cancelled: the item goes to the next reader
                raise
            finally:
                self._getters = _forget(self._getters, getter)
        return self._items.pop(0)

    def _wake_next(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return


class Flag:
    """An event for asyncio: ``set``, ``clear``, ``is_set``, ``wait``, as ``asyncio.Event``."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        self._waiters, waiter = _add_waiter(self._waiters)
        try:
            await waiter
            return True
        finally:
            self._waiters = _forget(self._waiters, waiter)


def _add_waiter(waiters: list[asyncio.Future] | None) -> tuple[list, asyncio.Future]:
    """A new future on the running loop, appended to ``waiters`` (made if None)."""
    waiter = asyncio.get_running_loop().create_future()
    if waiters is None:
        waiters = []
    waiters.append(waiter)
    return waiters, waiter


def _forget(waiters: list[asyncio.Future] | None, waiter: asyncio.Future) -> list | None:
    """``waiters`` without ``waiter`` (already taken out by a wake-up, or not); None once empty,
    so an idle connection keeps no list."""
    if waiters is not None:
        with suppress(ValueError):
            waiters.remove(waiter)
    return waiters or None
