"""The supervisor's back-off on a child that keeps crashing (real child processes)."""

from __future__ import annotations

import logging
import os
import sys
import threading

from prometheus_client import REGISTRY

from ops import supervisor
from tests.support.procs import wait_until


def test_a_crash_loop_backs_off_is_logged_and_counted_and_stop_ends_it(caplog):
    caplog.set_level(logging.INFO, logger="parley.serve")
    before = REGISTRY.get_sample_value("parley_process_restarts_total", {"process": "crasher"})
    sup = supervisor.Supervisor(
        {"crasher": [sys.executable, "-c", "raise SystemExit(3)"]}, dict(os.environ)
    )
    stop = threading.Event()
    runner = threading.Thread(target=sup.run, args=(stop,))
    runner.start()
    try:
        wait_until(
            lambda: any("crash-looping" in r.getMessage() for r in caplog.records),
            timeout=30,
            what="the crash loop reported",
        )
    finally:
        stop.set()
        runner.join(timeout=20)
    assert not runner.is_alive()
    exits = [r.getMessage() for r in caplog.records if "exit status 3" in r.getMessage()]
    # first exit: back at once; then 0.5 s, 1 s: the third says crash-looping
    assert "restarting in 0.0s" in exits[0] and "restarting in 0.5s" in exits[1], exits
    assert "crash-looping, 3 quick exits in a row; restarting in 1.0s" in exits[2], exits
    after = REGISTRY.get_sample_value("parley_process_restarts_total", {"process": "crasher"})
    assert after - (before or 0) >= 2
