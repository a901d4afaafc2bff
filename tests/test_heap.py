"""Long-running processes freeze their start-up heap (infra/heap.py): the ASGI application once
it is built, the relay and the subscribers' workers before they serve. Without it a full
collection in a daphne process serving 1,000 sockets paused its event loop 127-167 ms."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest
from django.core.management import call_command

from tests.support.procs import server_env


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process collects as before


@pytest.mark.django_db
def test_the_asgi_application_freezes_what_it_loaded():
    probe = "import gc, config.asgi; print(gc.get_freeze_count())"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=server_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 10_000  # Django and the app, out of every full scan


@pytest.mark.django_db(transaction=True)
def test_the_relay_freezes_its_start_up_heap(unfrozen):
    assert gc.get_freeze_count() == 0
    call_command("relay", "--once")
    assert gc.get_freeze_count() > 10_000
