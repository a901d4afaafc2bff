"""The README's example client works against a real server, with a real token."""

from __future__ import annotations

import subprocess
import sys

import pytest

from accounts.tokens import create_token
from chat import actions
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
        "caught up to seq 2, change 2",  # resumed from the page's position: nothing replayed
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
    assert "lobby: caught up to seq 1, change 1" in first
    for slug in rooms:
        seq = 2 if slug == "lobby" else 1
        assert f"{slug}: acked #{seq}" in first
        assert any(
            line.startswith(f"{slug}: message.new #{seq} bob: hello {slug}") for line in first
        )
        assert f"{slug}: caught up to seq {seq}, change {seq}" in second  # nothing replayed
    assert not any("message.new" in line for line in second)


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
