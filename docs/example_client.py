"""A program talking to Parley with an API token: read over REST, listen, post, resume.

    python docs/example_client.py http://127.0.0.1:8000 plt_yourtoken lobby

Needs only the `websockets` package. Get a token at /account/tokens/ or with
`python manage.py token create <username>`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
import uuid
from collections.abc import Callable

import websockets


def api(base: str, token: str, method: str, path: str, body: dict | None = None, **headers):
    if not base.startswith(("http://", "https://")):
        raise SystemExit("the server URL must start with http:// or https://")
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - as above
        return json.load(response)


def show(frame: dict) -> None:
    """The default ``on_frame``: print what a frame says."""
    if frame["type"].startswith("message."):
        message = frame["message"]
        print(f"{frame['type']} #{message['seq']} {message['author']}: {message['body']}")
    elif frame["type"] in ("member.joined", "member.left"):
        print(f"{frame['type']} {frame['member']['user']}")
    elif frame["type"] == "room.updated":
        print(f"room.updated: {frame['title']}")
    # Any other type (presence, typing, one a newer server adds): ignored.


async def listen(
    url: str, token: str, until_body: str | None = None, on_frame: Callable[[dict], None] = show
) -> tuple[int, int]:
    """Hand every replay and live frame to ``on_frame``; return (seq, change) to resume from."""
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(url, additional_headers=headers) as socket:
        seq = change = 0
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
            if frame["type"] == "sync.done":
                seq, change = frame["seq"], frame["change"]
                print(f"caught up to seq {seq}, change {change}")
                if until_body is None:
                    return seq, change
                continue
            # The resume rule: the highest seq you have, and the change of the last frame that
            # carried one (replayed new messages carry none; room events and frames of a type
            # this program does not know count like any other; sync.done ends a replay).
            if frame["type"].startswith("message."):
                seq = max(seq, frame["message"]["seq"])
            change = frame.get("change", change)
            on_frame(frame)
            if until_body is not None and frame.get("message", {}).get("body") == until_body:
                return seq, change


async def main(base: str, token: str, room: str) -> None:
    ws_base = base.replace("http", "ws", 1) + f"/ws/rooms/{room}/"
    # 1. The last few messages over REST. A page says where the room stood before it was read
    #    (last_seq, last_change): the socket resumes from exactly there, missing nothing.
    page = api(base, token, "GET", f"/api/rooms/{room}/messages/?limit=3")
    for message in page["results"]:
        print(f"rest #{message['seq']} {message['author']}: {message['body']}")
    seq = max([page["last_seq"], *(m["seq"] for m in page["results"])])
    seq, change = await listen(
        f"{ws_base}?after_seq={seq}&after_change={page['last_change']}", token
    )

    # 2. Post over REST; an Idempotency-Key makes a retry after a timeout safe.
    body = f"hello from a program ({uuid.uuid4().hex[:6]})"
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    posted = api(base, token, "POST", f"/api/rooms/{room}/messages/", {"body": body}, **headers)
    print(f"posted #{posted['seq']}")

    # 3. Resume from where we were: everything since, including our own post, then live.
    await listen(f"{ws_base}?after_seq={seq}&after_change={change}", token, until_body=body)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
