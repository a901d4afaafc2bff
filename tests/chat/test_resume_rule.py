"""The documented resume rule is safe wherever a connection drops (issue: a client that kept the
highest change it had seen and dropped mid-replay lost every edit still to come), room events
(members joining and leaving, the room renamed) included.

The rule (README, AsyncAPI): reconnect with ``after_seq`` = the highest seq you have and
``after_change`` = the change of the last frame that carried one. A client following it drops
after every k-th replay frame, for every k, and must converge to the server's state each time.
"""

from __future__ import annotations

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.db import connections

from chat import selectors
from contract import events
from tests.support import history as away
from tests.support.ws import open_socket

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest_asyncio.fixture(autouse=True)
async def _close_connections():
    yield
    await database_sync_to_async(connections.close_all)()


class Client:
    """What a program keeps: its copy of the room and its resume position. ``highest``: keep
    the highest change seen rather than the last (the rule a client in the issue followed)."""

    def __init__(self, highest: bool = False) -> None:
        self.highest = highest
        self.messages: dict[int, events.MessageData] = {}
        self.room = {"title": "Lobby", "members": {"alice", "bob"}}
        self.room_events: list[dict] = []  # every room event frame received
        self.seq = 0
        self.change = 0

    def apply(self, frame: dict) -> None:
        if frame["type"] in ("message.new", "message.edited", "message.deleted"):
            message = frame["message"]
            self.messages[message["seq"]] = message  # replace (or insert) by seq
            self.seq = max(self.seq, message["seq"])
        elif frame["type"] in ("member.joined", "member.left", "room.updated"):
            self.room_events.append(frame)
            if frame["type"] == "member.joined":
                self.room["members"].add(frame["member"]["user"])
            elif frame["type"] == "member.left":
                self.room["members"].discard(frame["member"]["user"])
            else:
                self.room["title"] = frame["title"]
        if "change" in frame:  # live frames, replayed edits and deletes, sync.done
            self.change = max(self.change, frame["change"]) if self.highest else frame["change"]
        if frame["type"] == "sync.done":
            self.seq = max(self.seq, frame["seq"])

    def query(self) -> str:
        return f"after_seq={self.seq}&after_change={self.change}"


history = database_sync_to_async(away.make_history)
room_state = database_sync_to_async(away.room_state)


@database_sync_to_async
def server_state(lobby) -> dict[int, events.MessageData]:
    return {
        m["seq"]: m for m, _ in selectors.messages_after(room_id=lobby.pk, after_seq=0, limit=1000)
    }


@pytest.mark.parametrize("highest", [False, True], ids=["last_change", "highest_change"])
async def test_dropping_after_every_kth_replay_frame_and_resuming_by_the_rule_converges(
    lobby, alice, bob, highest
):
    copy = await history(lobby, alice)
    truth, room_truth = await server_state(lobby), await room_state(lobby)
    seen = (away.SEEN, away.SEEN_CHANGE)

    # The whole replay, from the drop point: 6 new messages, then 5 older ones changed (1-5;
    # 2 twice: sent once) and the 3 room events, merged in change order.
    sock, frame = await open_socket(bob, query=f"after_seq={seen[0]}&after_change={seen[1]}")
    replay = []
    while frame["type"] != "sync.done":
        replay.append(frame)
        frame = await sock.recv()
    await sock.disconnect()
    n = len(replay)
    assert n == 6 + 5 + away.ROOM_EVENTS
    second_part = [f["change"] for f in replay[6:]]
    assert second_part == sorted(second_part) and all(f["replay"] for f in replay)
    kinds = [f["type"] for f in replay if not f["type"].startswith("message.")]
    assert kinds == ["member.joined", "room.updated", "member.left"]

    for k in range(1, n + 1):
        client = Client(highest)
        client.messages = dict(copy)
        client.seq, client.change = seen
        connections_made = 0
        while True:  # drop after every k-th replay frame, resume by the rule, until caught up
            sock, frame = await open_socket(bob, query=client.query())
            connections_made += 1
            received = 0
            while True:
                client.apply(frame)
                if frame["type"] == "sync.done":
                    break
                received += 1
                if received == k:
                    break
                frame = await sock.recv()
            await sock.disconnect()
            if frame["type"] == "sync.done":
                break
            # Each resume gets at least one frame further: a new message (seq grows) or an
            # older message's change (change grows), each at most once per message.
            assert connections_made <= 2 * n + 1, "resuming made no progress"
        assert client.messages == truth, f"dropping after every {k} frames diverged"
        assert client.room == room_truth, f"dropping after every {k} frames: room diverged"
        # Each room event exactly once: a resume starts after the last one received.
        assert [f["change"] for f in client.room_events] == second_part_room_events(replay)
        assert (client.seq, client.change) == away.FINAL


def second_part_room_events(replay: list[dict]) -> list[int]:
    return [f["change"] for f in replay if not f["type"].startswith("message.")]
