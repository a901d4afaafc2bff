"""What every WebSocket consumer of the project shares."""

from __future__ import annotations

try:  # daphne's WebSocket implementation raises this on a send after the client left
    from autobahn.exception import Disconnected
except ImportError:  # another ASGI server
    Disconnected = OSError


class ClientGoneSafeSend:
    """Mixin: a send to a client that has just gone is dropped instead of crashing the consumer.

    A live event can reach a consumer between its client closing and the server's
    ``websocket.disconnect`` message being dispatched. The send then raises (daphne: autobahn's
    ``Disconnected``; the ASGI spec: an ``OSError``), which would end the consumer with an error
    and skip ``disconnect()`` — leaving its groups and presence behind. Instead, later sends are
    skipped and the queued disconnect cleans up as usual.
    """

    client_gone = False

    async def send(self, text_data=None, bytes_data=None, close=False):
        if self.client_gone:
            return
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except (Disconnected, OSError):
            self.client_gone = True
