"""The reference for the benchmarks (python -m bench): a bare ``websockets`` broadcast server.

No Django, no Redis, no persistence. Every text frame any client sends that is a JSON object is
numbered (a process-wide seq) and broadcast to every connected client with
``websockets.broadcast``, serialized once, in the shape of Parley's frames so the same client code
drives both servers:

    on connect:      {"type": "sync.done", "seq": <current seq>}
    on each frame:   {"type": "message.new", "message": {"seq": n, "body": ..., "client_id": ...}}

Usage: python bench/raw_server.py --port 8765   (loopback only; SIGTERM/SIGINT stop it)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from websockets.asyncio.server import ServerConnection, broadcast, serve

CLIENTS: set[ServerConnection] = set()
SEQ = 0


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def handler(ws: ServerConnection) -> None:
    global SEQ
    CLIENTS.add(ws)
    try:
        await ws.send(dumps({"type": "sync.done", "seq": SEQ}))
        async for data in ws:
            if not isinstance(data, str):
                continue
            try:
                frame = json.loads(data)
            except ValueError:
                continue
            if not isinstance(frame, dict):
                continue
            SEQ += 1
            message = {"seq": SEQ, "body": frame.get("body"), "client_id": frame.get("client_id")}
            broadcast(CLIENTS, dumps({"type": "message.new", "message": message}))
    finally:
        CLIENTS.discard(ws)


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
    async with serve(handler, host, port, compression=None, ping_interval=None, max_size=2**20):
        print(f"raw server on ws://{host}:{port}/", flush=True)
        try:
            await stop
        except asyncio.CancelledError:
            pass  # leaving the block closes the server and its connections


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "::1", "localhost"])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
