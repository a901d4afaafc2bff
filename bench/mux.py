"""The ``mux`` scenario: rooms followed on one multiplexed socket (``/ws/``) against today's one
socket per room (``/ws/rooms/<slug>/``), on one daphne process.

Two layouts, each measured both ways on a fresh stack:
- *wide*: one client following ``mux_rooms`` rooms (1,000), one message posted to each room;
  per-room: ``mux_rooms`` room sockets;
- *shared*: ``mux_sockets`` clients (1,000) each following the same ``mux_per_socket`` rooms (10),
  ``mux_posts`` messages posted to each room; per-room: ``mux_sockets x mux_per_socket`` room
  sockets.

Messages are written by a separate process (``manage.py shell``: the write path and the relay's
publish are not the server's CPU), so the server's CPU in the window is the fan-out: the live
event received once per process, each subscription's delivery verdict, the frame written.
Reported: server CPU per 1,000 deliveries, and the server's RSS added per subscription (from
before the sockets opened to when every subscription's ``sync.done`` came). Every delivery is
checked: each room's seqs once and in order on every subscription.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import connect

from bench.measure import CpuWindow, per_1000, rss_mib

OWNER = "bench-0"
CONNECT_BATCH = 100  # sockets opened at once


def _shell(stack, code: str, timeout: float = 600) -> str:
    return stack.manage("shell", "-c", code, timeout=timeout)


def _create_rooms(stack, prefix: str, count: int) -> list[str]:
    slugs = [f"{prefix}-{i}" for i in range(count)]
    _shell(
        stack,
        "from django.contrib.auth import get_user_model\n"
        "from chat import actions\n"
        f"owner = get_user_model().objects.get(username={OWNER!r})\n"
        f"for slug in {slugs!r}:\n"
        "    actions.create_room(creator=owner, slug=slug, title=slug)\n",
    )
    return slugs


def _post(stack, slugs: list[str], per_room: int) -> None:
    """``per_room`` messages to each room, round-robin over the rooms, from another process."""
    _shell(
        stack,
        "from django.contrib.auth import get_user_model\n"
        "from chat import actions\n"
        "from chat.models import Room\n"
        f"owner = get_user_model().objects.get(username={OWNER!r})\n"
        f"rooms = [Room.objects.get(slug=s) for s in {slugs!r}]\n"
        f"for i in range({per_room}):\n"
        "    for room in rooms:\n"
        "        actions.post_message(author=owner, room=room, body=f'm{i}')\n",
    )


class Client:
    """One WebSocket: per room, the seqs of the message.new frames it received."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.seqs: dict[str, list[int]] = {}
        self.received = 0

    async def read(self, expected: int, done: asyncio.Event, counter: list[int]) -> None:
        async for text in self.ws:
            frame = json.loads(text)
            if frame["type"] != "message.new":
                continue
            room = frame.get("room") or frame["message"]["room"]
            self.seqs.setdefault(room, []).append(frame["message"]["seq"])
            counter[0] += 1
            if counter[0] >= expected:
                done.set()


async def _open(url: str, token: str) -> Any:
    return await connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        compression=None,
        ping_interval=None,
        proxy=None,
        open_timeout=60,
        close_timeout=2,
        max_size=2**22,
    )


async def _room_socket(base: str, token: str, slug: str) -> Client:
    ws = await _open(f"{base}/ws/rooms/{slug}/", token)
    assert json.loads(await ws.recv())["type"] == "sync.done"
    return Client(ws)


async def _mux_socket(base: str, token: str, slugs: list[str]) -> Client:
    ws = await _open(f"{base}/ws/", token)
    assert json.loads(await ws.recv())["type"] == "ready"
    for slug in slugs:
        await ws.send(json.dumps({"type": "subscribe", "room": slug}))
    waiting = set(slugs)
    while waiting:
        frame = json.loads(await ws.recv())
        if frame["type"] == "sync.done":
            waiting.discard(frame["room"])
        elif frame["type"] == "error":
            raise RuntimeError(f"subscribe refused: {frame}")
    return Client(ws)


async def _measure(stack, clients_of, slugs: list[str], per_room: int, subs: int) -> dict:
    """Open the clients, post, wait for every delivery; the figures."""
    server = {n: p for n, p in stack.processes.items() if n.startswith("daphne")}
    rss_before = sum(rss_mib(p) or 0.0 for p in server.values())
    clients: list[Client] = []
    for batch in clients_of:
        clients += await asyncio.gather(*batch())
    rss_after = sum(rss_mib(p) or 0.0 for p in server.values())
    expected = subs * per_room
    done, counter = asyncio.Event(), [0]
    readers = [asyncio.create_task(c.read(expected, done, counter)) for c in clients]
    window = CpuWindow(server)
    t0 = time.monotonic()
    await asyncio.to_thread(_post, stack, slugs, per_room)
    try:
        await asyncio.wait_for(done.wait(), timeout=300)
    finally:
        seconds = time.monotonic() - t0
        cpu = sum(window.stop().values())
        for task in readers:
            task.cancel()
        await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)
    wrong = sum(seqs != list(range(1, per_room + 1)) for c in clients for seqs in c.seqs.values())
    return {
        "sockets": len(clients),
        "subscriptions": subs,
        "deliveries": counter[0],
        "expected": expected,
        "wrong_rooms": wrong,
        "mismatches": wrong + abs(expected - counter[0]),  # report.problems names them
        "seconds": round(seconds, 2),
        "server_cpu_s": round(cpu, 3),
        "cpu_ms_per_1000_deliveries": per_1000(cpu, counter[0]),
        "rss_added_mib": round(rss_after - rss_before, 1),
        "kib_per_subscription": round((rss_after - rss_before) * 1024 / subs, 2),
    }


def _batches(calls: list[tuple]) -> list:
    """Callables opening ``CONNECT_BATCH`` clients at a time: ``calls`` are (opener, args)."""
    return [
        (lambda chunk=calls[i : i + CONNECT_BATCH]: [opener(*args) for opener, args in chunk])
        for i in range(0, len(calls), CONNECT_BATCH)
    ]


def mux(run) -> list[dict]:
    """See the module docstring; one row per layout and endpoint."""
    cfg = run.cfg
    rows = []
    wide, sockets, per_socket = cfg.mux_rooms, cfg.mux_sockets, cfg.mux_per_socket
    layouts = [
        ("wide", wide, 1, 1),  # (name, rooms, clients, posts per room)
        ("shared", per_socket, sockets, cfg.mux_posts),
    ]
    for name, rooms, clients, per_room in layouts:
        for endpoint in ("/ws/", "/ws/rooms/"):
            target = f"{name} {endpoint}: {clients} client(s) x {rooms} rooms"
            print(f"  mux: {target} ...", flush=True)
            run.close()  # a fresh stack: memory is measured from a clean start
            stack = run.parley()
            slugs = _create_rooms(stack, f"mux-{name}", rooms)
            base, token = stack.base.replace("http", "ws", 1), stack.tokens[1]
            if endpoint == "/ws/":
                calls = [(_mux_socket, (base, token, slugs))] * clients
            else:
                calls = [(_room_socket, (base, token, s)) for _ in range(clients) for s in slugs]
            try:
                result = asyncio.run(
                    _measure(stack, _batches(calls), slugs, per_room, subs=rooms * clients)
                )
            except Exception as exc:  # noqa: BLE001 - reported in the table and the JSON
                print(f"  ERROR ({target}): {exc}", flush=True)
                result = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            rows.append({"target": target, "layout": name, "endpoint": endpoint, **result})
    return rows
