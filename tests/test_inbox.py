"""realtime.inbox: the queue and the event each connection holds, in place of asyncio's (3.3 and
1 KiB less per idle socket). They keep the semantics the servers and chat.consumers.direct rely
on: FIFO, nothing lost to a cancelled reader, every waiter woken. The servers really use them:
tests/chat/test_servers.py."""

from __future__ import annotations

import asyncio
import sys

import pytest

from realtime.inbox import Flag, Inbox

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(10)]


async def test_items_come_out_in_the_order_they_went_in():
    inbox = Inbox()
    assert inbox.empty() and inbox.qsize() == 0
    assert inbox  # daphne tests ``if self.application_queue:`` before using it
    for i in range(5):
        inbox.put_nowait(i)
    assert inbox.qsize() == 5 and not inbox.empty()
    assert [await inbox.get() for _ in range(4)] == [0, 1, 2, 3]
    assert inbox.get_nowait() == 4
    with pytest.raises(asyncio.QueueEmpty):
        inbox.get_nowait()


async def test_a_reader_waits_for_the_next_item():
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait("connect")
    assert await reader == "connect"
    assert inbox.empty()


async def test_readers_are_served_in_the_order_they_came():
    inbox = Inbox()
    readers = [asyncio.ensure_future(inbox.get()) for _ in range(3)]
    await asyncio.sleep(0)
    for item in "abc":
        inbox.put_nowait(item)
    assert await asyncio.gather(*readers) == ["a", "b", "c"]


async def test_a_reader_cancelled_while_waiting_takes_nothing():
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    inbox.put_nowait("kept")
    assert await inbox.get() == "kept"


async def test_a_reader_cancelled_after_it_was_woken_leaves_the_item_to_the_next():
    # chat.consumers.direct cancels a read-ahead; a message handed to it must not be lost.
    inbox = Inbox()
    first = asyncio.ensure_future(inbox.get())
    second = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("message")  # wakes the first reader, which has not run yet
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "message"
    assert inbox.empty()


async def test_an_idle_inbox_is_small():
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())  # an idle socket: its application waits
    await asyncio.sleep(0)
    held = sys.getsizeof(inbox) + sys.getsizeof(inbox._items) + sys.getsizeof(inbox._getters)
    queue = asyncio.Queue()
    assert held < 400 < sys.getsizeof(queue._queue)  # one of asyncio.Queue's three deques
    inbox.put_nowait(None)
    await reader


async def test_a_flag_wakes_every_waiter_when_set():
    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await flag.wait() is True  # set: at once


async def test_a_cleared_flag_blocks_until_set_again():
    flag = Flag(True)
    assert await flag.wait() is True
    flag.clear()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    flag.set()
    assert await waiter is True


async def test_a_cancelled_wait_leaves_no_waiter_behind():
    flag = Flag()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert flag._waiters is None
    flag.set()
    assert flag.is_set()
