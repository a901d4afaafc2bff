"""What every WebSocket consumer of the project shares."""

from __future__ import annotations

from channels.sessions import InstanceSessionWrapper

try:  # daphne's WebSocket implementation raises this on a send after the client left
    from autobahn.exception import Disconnected
except ImportError:  # another ASGI server
    Disconnected = OSError

# What a send to a client that has just left raises (uvicorn: ClientDisconnected, an OSError).
ClientGone = (Disconnected, OSError)


class ClientGoneSafeSend:
    """Mixin: a send to a client that has just gone is dropped instead of crashing the consumer.

    A live event can reach a consumer between its client closing and the server's
    ``websocket.disconnect`` message being dispatched. The send then raises (daphne: autobahn's
    ``Disconnected``; the ASGI spec: an ``OSError``), which would end the consumer with an error
    and skip ``disconnect()`` — leaving its groups and presence behind. Instead, later sends are
    skipped and the queued disconnect cleans up as usual.
    """

    client_gone = False
    raw_send = None  # the server's own send, for send_prepared (see innermost_send)

    async def send(self, text_data=None, bytes_data=None, close=False):
        if self.client_gone:
            return
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except ClientGone:
            self.client_gone = True

    async def send_prepared(self, message: dict) -> None:
        """Send a ready ASGI ``websocket.send`` message, one dict shared by every socket an
        event goes to (the server only reads it)."""
        if self.client_gone:
            return
        try:
            await (self.raw_send or self.base_send)(message)
        except ClientGone:
            self.client_gone = True


def innermost_send(send):
    """The server's ``send`` under channels' session middleware, which wraps it to save the
    session on HTTP responses: a WebSocket frame never needs that, and the wrapper cost a lazy
    session lookup per frame (a tenth of the fan-out's time in the profile)."""
    while isinstance(getattr(send, "__self__", None), InstanceSessionWrapper):
        send = send.__self__.real_send
    return send
