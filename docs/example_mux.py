"""A program following several rooms on one socket (``/ws/``), resuming each on its own.

    python docs/example_mux.py http://127.0.0.1:8000 plt_yourtoken lobby random

Subscribes to every room named, posts one message to each, prints what each room receives until
its own post comes back live, reconnects, and resumes each room from its own position (the
README's resume rule, per room). Needs only the `websockets` package.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import websockets


async def follow(url: str, token: str, positions: dict, *, post: bool) -> None:
    """Subscribe to each room of ``positions`` ({room: (seq, change) or None}) and print its
    frames; with ``post``, post to each and return once every post came back live, else return
    once every room is caught up. ``positions`` is kept up to date."""
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(url, additional_headers=headers) as socket:
        ready = json.loads(await socket.recv())
        print(f"ready: up to {ready['max_subscriptions']} rooms")
        for room, position in positions.items():
            frame = {"type": "subscribe", "room": room}
            if position is not None:
                frame["after_seq"], frame["after_change"] = position
            await socket.send(json.dumps(frame))
        waiting = set(positions)  # rooms not caught up yet (then: whose post is not back yet)
        bodies = {}
        while waiting:
            frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
            room, kind = frame["room"], frame["type"]
            seq, change = positions[room] or (0, 0)
            if kind == "sync.done":
                positions[room] = (frame["seq"], frame["change"])
                print(f"{room}: caught up to seq {frame['seq']}, change {frame['change']}")
                if post:
                    bodies[room] = f"hello {room} ({uuid.uuid4().hex[:6]})"
                    message = {"type": "message.send", "room": room, "body": bodies[room]}
                    await socket.send(json.dumps({**message, "client_id": str(uuid.uuid4())}))
                else:
                    waiting.discard(room)
            elif kind in ("message.new", "message.edited", "message.deleted"):
                message = frame["message"]
                # The resume rule, per room: the highest seq, the change of the last frame
                # that carried one.
                positions[room] = (max(seq, message["seq"]), frame.get("change", change))
                print(f"{room}: {kind} #{message['seq']} {message['author']}: {message['body']}")
                if post and message["body"] == bodies.get(room) and "replay" not in frame:
                    waiting.discard(room)
            elif kind == "message.ack":
                print(f"{room}: acked #{frame['message']['seq']}")
            else:  # room events (member.joined, member.left, room.updated) and others
                if "change" in frame:  # counted by the same rule
                    positions[room] = (seq, frame["change"])
                print(f"{room}: {kind} {frame}")


async def main(base: str, token: str, *rooms: str) -> None:
    url = base.replace("http", "ws", 1) + "/ws/"
    positions: dict = dict.fromkeys(rooms)
    await follow(url, token, positions, post=True)
    print("reconnecting")
    await follow(url, token, positions, post=False)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
