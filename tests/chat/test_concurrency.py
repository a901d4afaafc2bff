"""Several OS processes posting to one room at once: seqs stay gapless and unique, and the
stream carries the room's events in seq order."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from django.conf import settings

from chat.models import Message, OutboxEvent, Room
from tests.support.procs import BASE_DIR, server_env, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]

WORKERS = 4
PER_WORKER = 50

# One writer process: set up Django, say "ready", wait for "go" on stdin (so that every worker
# starts posting at the same moment), then post PER_WORKER messages one after the other — one
# at a time (post_message) or in batches of 10 (post_messages, the WebSocket path).
WORKER = textwrap.dedent(
    """
    import sys

    import django

    django.setup()

    from django.contrib.auth import get_user_model

    from chat import actions
    from chat.models import Room

    worker, count, username, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    room = Room.objects.get(slug="lobby")
    author = get_user_model().objects.get(username=username)
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "one":
        for i in range(count):
            actions.post_message(author=author, room=room, body=f"w{worker} {i}")
    else:
        for start in range(0, count, 10):
            requests = [
                actions.PostRequest(author, room, f"w{worker} {i}")
                for i in range(start, min(count, start + 10))
            ]
            results = actions.post_messages(requests)
            assert all(isinstance(r, actions.PostResult) for r in results), results
    print("done", flush=True)
    """
)


@pytest.fixture
def workers(tmp_path):
    started: list[tuple[subprocess.Popen, object]] = []

    def start(n: int, username: str, mode: str) -> tuple[subprocess.Popen, object]:
        log_path = tmp_path / f"worker-{n}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed in teardown
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(n), str(PER_WORKER), username, mode],
            env=server_env(settings.REDIS_URL, PARLEY_RATE_LIMIT_MESSAGES="100000"),
            cwd=BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((proc, log))
        return proc, log_path

    yield start
    for proc, log in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_processes_posting_at_once_get_gapless_unique_seqs_published_in_order(
    workers, lobby, stream_events
):
    # Two workers post one message per transaction, two post batches of ten.
    procs = [
        workers(n, "alice" if n % 2 else "bob", "one" if n < 2 else "batch") for n in range(WORKERS)
    ]

    def logs() -> str:
        return "".join(f"\n----- {path.name}\n{path.read_text()[-3000:]}" for _, path in procs)

    def all_ready() -> bool:
        for proc, _ in procs:
            assert proc.poll() is None, f"a worker exited early:{logs()}"
        return all("ready" in path.read_text() for _, path in procs)

    wait_until(all_ready, timeout=60, what="every worker is set up")
    for proc, _ in procs:
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    for proc, _ in procs:
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"a worker did not finish:{logs()}")
        assert proc.returncode == 0, logs()

    total = WORKERS * PER_WORKER
    messages = list(Message.objects.filter(room=lobby).order_by("seq").values("seq", "body"))
    assert [m["seq"] for m in messages] == list(range(1, total + 1))
    expected = {f"w{n} {i}" for n in range(WORKERS) for i in range(PER_WORKER)}
    assert {m["body"] for m in messages} == expected
    assert len(messages) == len(expected)
    for n in range(WORKERS):
        # Each worker posted one after the other, so its own messages are in seq order.
        mine = [m["body"] for m in messages if m["body"].startswith(f"w{n} ")]
        assert mine == [f"w{n} {i}" for i in range(PER_WORKER)]
    assert Room.objects.get(pk=lobby.pk).last_seq == total

    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    published = [e for e in stream_events() if e["room"] == lobby.slug]
    assert [e["seq"] for e in published] == list(range(1, total + 1))
    assert [e["payload"]["message"]["body"] for e in published] == [m["body"] for m in messages]
