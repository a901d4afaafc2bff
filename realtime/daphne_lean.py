"""daphne's server with a lean queue per connection: each connection's application gets its
events from a ``realtime.inbox.Inbox`` instead of an ``asyncio.Queue`` (3.3 KiB less per idle
socket). realtime.daphne_server runs it (``CommandLine``: daphne's command line, whose
``server_class`` says which server class to build).

``LeanServer.create_application`` is daphne 4.2's own but for the queue; it uses the server's
``connections``, ``application`` and ``handle_reply`` (``needs``), checked at the first
connection: where one is missing, daphne's own runs, with one log line a process. Checked at the
pinned daphne (>=4.2,<4.3) by tests/chat/test_servers.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from daphne.cli import CommandLineInterface
from daphne.server import Server

from realtime.inbox import Inbox

log = logging.getLogger("parley.server")


class LeanServer(Server):
    """daphne's server, its per-connection queue an ``Inbox``. ``create_application`` is daphne
    4.2's own, but for the queue; where the attributes it uses are missing, daphne's runs (one
    log line a process)."""

    needs = ("connections", "application", "handle_reply")
    lean: bool | None = None  # decided by the first connection

    def create_application(self, protocol, scope):
        if LeanServer.lean is None:
            LeanServer.lean = all(hasattr(self, name) for name in self.needs)
            if not LeanServer.lean:
                log.warning("daphne's Server changed: its connections keep asyncio queues")
        if not LeanServer.lean:
            return super().create_application(protocol, scope)
        assert "application_instance" not in self.connections[protocol]
        inbox = Inbox()
        scope.setdefault("asgi", {"version": "3.0"})
        instance = self.application(
            scope=scope, receive=inbox.get, send=functools.partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            instance, loop=asyncio.get_event_loop()
        )
        return inbox


class CommandLine(CommandLineInterface):
    server_class = LeanServer
