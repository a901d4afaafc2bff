"""The entry point of a client process (started by bench/load.py and bench/storm_load.py): one
asyncio loop running one kind of client, its results put on the parent's queues."""

from __future__ import annotations

import asyncio
import signal

from bench import clients, pollers, resumers

RUNNERS = {
    "listeners": clients.listeners,
    "sender": clients.sender,
    "pollers": pollers.pollers,
    "resumers": resumers.resumers,
}


def client_main(kind: str, index: int, spec: dict, ctl, ready_q, result_q, opts) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    try:
        asyncio.run(RUNNERS[kind](index, spec, ctl, ready_q, result_q, opts))
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
