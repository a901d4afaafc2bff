"""daphne with a deadline for each HTTP request, and a graceful SIGTERM (ops.drain):
``python -m realtime.daphne_server`` takes daphne's own command line (realtime/servers.py
builds it).

daphne has no option for how long a client may take to send a request: its ``--http-timeout``
starts once the request is complete, and Twisted's idle timeout restarts on every byte, so a
client sending one byte of headers every few seconds (slowloris) holds a connection forever.
Here each connection must deliver a whole request (request line, headers, body) within
``PARLEY["HTTP_REQUEST_TIMEOUT"]`` seconds of opening, and the next one within as long after
each response; otherwise the connection is aborted. A request upgraded to a WebSocket is
complete once its handshake arrived: the socket then lives as long as it likes.

A WebSocket may be closed with 1012 or 1001 (``_RestartCloseProtocol``), and SIGTERM drains the
process (``_GracefulSigterm``) before daphne stops it. The server class is
realtime.daphne_lean's (each connection's queue an ``Inbox``).

This reaches into daphne through three points, both checked by
tests/test_http_deadline.py at the pinned daphne (>=4.2,<4.3): ``daphne.server.HTTPFactory``
(the factory ``Server.run`` builds) and the per-connection ``requestFactory`` (daphne's
``WebRequest``, whose ``process`` runs when a request is complete and ``finish`` when its
response is), and the connection's ``makeConnection`` (IProtocol) to learn its transport.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from daphne import server as daphne_server
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from django.conf import settings
from twisted.internet import reactor
from twisted.internet.interfaces import IListeningPort

from realtime.daphne_lean import CommandLine

log = logging.getLogger("parley.server")


class _Deadline:
    """One connection's deadline for its next request."""

    def __init__(self) -> None:
        self.transport = None
        self.call = None

    def arm(self) -> None:
        self.cancel()
        self.call = reactor.callLater(settings.PARLEY["HTTP_REQUEST_TIMEOUT"], self._expire)

    def cancel(self) -> None:
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None

    def _expire(self) -> None:
        self.call = None
        transport = self.transport
        if transport is not None and not getattr(transport, "disconnected", False):
            transport.abortConnection()

    def request(self, *args, **kwargs) -> WebRequest:
        """The connection's request factory: daphne's request, tied to this deadline."""
        request = _DeadlineRequest(*args, **kwargs)
        request.deadline = self
        return request


class _DeadlineRequest(WebRequest):
    deadline: _Deadline

    def process(self):
        self.deadline.cancel()  # the request is complete (a WebSocket: its handshake)
        return super().process()

    def finish(self):
        result = super().finish()
        self.deadline.arm()  # the next request on this connection has as long
        return result


class DeadlineHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        deadline = _Deadline()
        protocol.requestFactory = deadline.request
        make_connection = protocol.makeConnection

        def makeConnection(transport) -> None:  # noqa: N802 (Twisted's name)
            # The connection's transport, through IProtocol only (Twisted's HTTP protocol is a
            # proxy that keeps it on a private channel).
            deadline.transport = transport
            deadline.arm()
            make_connection(transport)

        protocol.makeConnection = makeConnection
        return protocol


class _RestartCloseProtocol(WebSocketProtocol):
    """daphne's WebSocket protocol, able to close with 1012 (service restart) and 1001 (going
    away), the codes of a graceful restart (ops.drain). autobahn's ``sendClose`` takes only 1000
    and 3000-4999 from an application, so daphne's ``serverClose`` raises for them; autobahn's
    ``sendCloseFrame`` runs the same close handshake without that check."""

    def serverClose(self, code=None):  # noqa: N802 (daphne's name)
        if code in (1001, 1012):
            self.sendCloseFrame(code=code, isReply=False)
        else:
            super().serverClose(code=code)


class _WebSocketFactory(WebSocketFactory):
    protocol = _RestartCloseProtocol


class _GracefulSigterm:
    """SIGTERM drains the process (ops.drain) before the reactor stops.

    Twisted's own SIGTERM handler stops the reactor at once, and daphne's "before shutdown"
    trigger then cancels every application: sockets end without a close frame (1006). Hooks:
    ``reactor.callWhenRunning`` (runs after the reactor installed its signal handlers) to put
    this handler in place with ``signal.signal``; the listening ports are found among the
    reactor's readers (``IReactorFDSet.getReaders``, ``IListeningPort``). All public APIs.
    A second SIGTERM stops at once.
    """

    def __init__(self) -> None:
        self.task: asyncio.Future | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self.on_signal)

    def on_signal(self, signum: int, frame: object) -> None:
        reactor.callFromThread(self.start)

    def start(self) -> None:
        if self.task is not None:
            log.warning("SIGTERM again: stopping without waiting for the drain")
            reactor.stop()
            return
        from ops import drain  # needs Django's apps, loaded with the application

        self.task = asyncio.ensure_future(drain.restart(self.stop_listening))
        self.task.add_done_callback(lambda _: reactor.running and reactor.stop())

    @staticmethod
    def stop_listening() -> None:
        ports = [r for r in reactor.getReaders() if IListeningPort.providedBy(r)]
        if not ports:
            log.warning("no listening port found among the reactor's readers: still accepting")
        for port in ports:
            port.stopListening()


def main(argv: list[str]) -> None:
    daphne_server.HTTPFactory = DeadlineHTTPFactory  # what Server.run builds its factory from
    daphne_server.WebSocketFactory = _WebSocketFactory  # likewise, for upgraded connections
    reactor.callWhenRunning(_GracefulSigterm().install)
    CommandLine().run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
