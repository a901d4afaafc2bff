"""The README's example client works against a real server, with a real token."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys

import pytest

from accounts.tokens import create_token
from chat import actions
from tests.support import history
from tests.support.procs import BASE_DIR, Daphne


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_example_client_posts_listens_and_resumes(tmp_path, lobby, alice, bob):
    for body in ("one", "two"):
        actions.post_message(author=alice, room=lobby, body=body)
    _, token = create_token(user=bob, name="example")
    lines = _run_against_daphne(tmp_path, "docs/example_client.py", token, "lobby")
    assert lines[:3] == [
        "rest #1 alice: one",
        "rest #2 alice: two",
        "caught up to seq 2, change 4",  # resumed from the page's position: nothing replayed
    ]
    assert lines[3] == "posted #3"
    assert lines[4].startswith("message.new #3 bob: hello from a program")


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_example_mux_follows_rooms_on_one_socket_of_a_real_server(tmp_path, lobby, alice, bob):
    """/ws/ through daphne: three rooms on one socket, a post to each acked and pushed back
    tagged with its room, then a reconnect resuming each room from its own position."""
    rooms = ["lobby"]
    for slug in ("random", "work"):
        room = actions.create_room(creator=alice, slug=slug, title=slug)
        actions.join_room(user=bob, room=room)
        rooms.append(slug)
    actions.post_message(author=alice, room=lobby, body="before")
    _, token = create_token(user=bob, name="example")
    lines = _run_against_daphne(tmp_path, "docs/example_mux.py", token, *rooms)
    first, second = lines[: lines.index("reconnecting")], lines[lines.index("reconnecting") + 1 :]
    assert "lobby: caught up to seq 1, change 3" in first  # 2: the room events of joining
    for slug in rooms:
        seq = 2 if slug == "lobby" else 1
        assert f"{slug}: acked #{seq}" in first
        assert any(
            line.startswith(f"{slug}: message.new #{seq} bob: hello {slug}") for line in first
        )
        assert f"{slug}: caught up to seq {seq}, change {seq + 2}" in second  # nothing replayed
    assert not any("message.new" in line for line in second)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_example_client_hands_room_events_to_its_callback_and_resumes_by_the_rule(
    tmp_path, lobby, alice, bob
):
    """Its ``listen`` gets the replay of messages and room events (a member joins, the room is
    renamed, the member is removed), passes each frame to ``on_frame`` and ends at the room's
    position; resuming from there replays nothing."""
    history.make_history(lobby, alice)
    _, token = create_token(user=bob, name="example")
    spec = importlib.util.spec_from_file_location(
        "example_client", BASE_DIR / "docs/example_client.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    daphne = Daphne(tmp_path).start()
    try:
        url = f"ws://127.0.0.1:{daphne.port}/ws/rooms/lobby/"
        seen = f"?after_seq={history.SEEN}&after_change={history.SEEN_CHANGE}"
        frames: list[dict] = []
        position = asyncio.run(example.listen(url + seen, token, on_frame=frames.append))
        again: list[dict] = []
        resumed = f"?after_seq={position[0]}&after_change={position[1]}"
        asyncio.run(example.listen(url + resumed, token, on_frame=again.append))
    finally:
        daphne.stop()
    room_events = [f["type"] for f in frames if not f["type"].startswith("message.")]
    assert room_events == ["member.joined", "room.updated", "member.left"]
    assert position == history.FINAL and again == []


def _run_against_daphne(tmp_path, script: str, token: str, *args: str) -> list[str]:
    """Run an example program against a real daphne server; its output lines."""
    daphne = Daphne(tmp_path).start()
    try:
        run = subprocess.run(
            [sys.executable, script, f"http://127.0.0.1:{daphne.port}", token, *args],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        daphne.stop()
    assert run.returncode == 0, run.stderr + daphne.tail()
    return run.stdout.splitlines()
