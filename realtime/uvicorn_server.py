"""uvicorn with a graceful SIGTERM (ops.drain): ``python -m realtime.uvicorn_server`` takes
uvicorn's own command line (realtime/servers.py builds it).

uvicorn's SIGTERM handler (``Server.handle_exit``, installed by ``capture_signals``) sets
``should_exit``: within 0.1 s the server closes its listening sockets, sends 1012 to every
WebSocket at once (posts in flight unanswered) and cancels what is left after
``--timeout-graceful-shutdown``. Here the first SIGTERM runs ``ops.drain.restart`` first
(``/readyz`` 503, the drain delay, stop accepting, posts answered and sockets closed with
1012), then hands the signal to uvicorn's handler, which finishes as before (and re-raises the
signal, so the process ends by SIGTERM). A second SIGTERM, or SIGINT, goes to uvicorn at once.

Hooks: ``Server.handle_exit`` (a public method) and ``Server.servers`` (the asyncio servers it
listens with), in a subclass that ``uvicorn.main`` is told to use (``uvicorn.main.Server``,
the name its ``run`` builds the server from; checked at the pinned uvicorn (<1) by
tests/ops/test_drain.py). Where that name is missing the server runs without the drain, with a log
line saying so.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import sys

from uvicorn.server import Server

# The module (``uvicorn.main`` as an attribute is its ``main`` command, re-exported).
uvicorn_main = importlib.import_module("uvicorn.main")

log = logging.getLogger("parley.server")


class GracefulServer(Server):
    drain_task: asyncio.Task | None = None

    def handle_exit(self, sig: int, frame) -> None:
        if sig != signal.SIGTERM or self.drain_task is not None or self.should_exit:
            super().handle_exit(sig, frame)
            return
        loop = asyncio.get_running_loop()  # a signal handler runs on the loop's (main) thread
        loop.call_soon_threadsafe(self._start_drain, sig)

    def _start_drain(self, sig: int) -> None:
        if self.drain_task is not None:
            return
        from ops import drain  # needs Django's apps, loaded with the application

        self.drain_task = asyncio.ensure_future(drain.restart(self._stop_listening))
        self.drain_task.add_done_callback(lambda _: self._drained(sig))

    def _drained(self, sig: int) -> None:
        super().handle_exit(sig, None)  # uvicorn's shutdown, as if the signal came now

    def _stop_listening(self) -> None:
        for server in getattr(self, "servers", []):
            server.close()


def main() -> None:
    if getattr(uvicorn_main, "Server", None) is Server:
        uvicorn_main.Server = GracefulServer
    else:
        log.warning("uvicorn.main.Server not found: SIGTERM will not drain the sockets first")
    uvicorn_main.main(prog_name="uvicorn")


if __name__ == "__main__":
    sys.exit(main())
