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
    daphne = Daphne(tmp_path).start()
    try:
        run = subprocess.run(
            [
                sys.executable,
                "docs/example_client.py",
                f"http://127.0.0.1:{daphne.port}",
                token,
                "lobby",
            ],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        daphne.stop()
    assert run.returncode == 0, run.stderr + daphne.tail()
    lines = run.stdout.splitlines()
    assert lines[:3] == [
        "rest #1 alice: one",
        "rest #2 alice: two",
        "caught up to seq 2, change 2",  # resumed from the page's position: nothing replayed
    ]
    assert lines[3] == "posted #3"
    assert lines[4].startswith("message.new #3 bob: hello from a program")
