"""The floor apps of ``python -m bench floor`` (bench/floor.py): the least a WebSocket connect
costs on Parley's ASGI servers, without Parley.

``asgi``: a bare ASGI application that accepts the socket and sends the ``sync.done`` frame the
load generator waits for (what raw's server sends), then waits for the disconnect: the server's
own handshake and frame writing. ``db_read``: the same after one read through Django's
database connection in its database thread (``database_sync_to_async``): the least an
authenticated connect adds (a token or session lookup is at least that read).
"""

from __future__ import annotations

import django

django.setup()

from channels.db import database_sync_to_async  # noqa: E402
from django.db import connection  # noqa: E402

SYNC_DONE = '{"type":"sync.done","seq":0}'


async def _serve(receive, send) -> None:
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": SYNC_DONE})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def asgi(scope, receive, send) -> None:
    if scope["type"] != "websocket":
        return
    if (await receive())["type"] == "websocket.connect":
        await _serve(receive, send)


def _read() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def db_read(scope, receive, send) -> None:
    if scope["type"] != "websocket":
        return
    if (await receive())["type"] == "websocket.connect":
        await database_sync_to_async(_read)()
        await _serve(receive, send)
