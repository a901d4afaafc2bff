"""Posts from the WebSocket sockets of one server process, written in batches.

A post used to be one trip to a database thread and a transaction of its own: about 5 ms of
CPU each, which capped a process near 120 posts/s. Here every socket's post joins the batch
that is gathering (infra.batches); while one batch is in the database, the next one gathers,
so a lone post goes at once and a burst is written with a few statements per room
(``actions.post_messages``) and published with one Redis round trip. Each post still gets its
own answer, exactly as ``actions.post_message`` would give it: the future gives (message,
created, change), or raises the ActionError that refused it. Requests are written in the order
they are submitted.
"""

from __future__ import annotations

from chat import actions
from contract import events
from infra.batches import Batcher
from infra.loops import per_loop
from ops import metrics

Answer = tuple[events.MessageData, bool, int] | actions.ActionError


def _post_and_describe(requests: list[actions.PostRequest]) -> list[Answer]:
    return [
        r
        if isinstance(r, actions.ActionError)
        else (events.message_data(r.message), r.created, r.message.change)
        for r in actions.post_messages(requests)
    ]


def _post_batcher() -> Batcher[actions.PostRequest]:
    return Batcher(_post_and_describe, answered=metrics.POST_LATENCY.observe)


# This event loop's batcher of posts (one per server process).
batcher = per_loop(_post_batcher)
