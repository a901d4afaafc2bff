"""Keep child processes running: what ``manage.py serve`` does with the ASGI server, the relay
and the subscribers' workers.

Guarantees:
- A child that exits, for any reason, is started again: at once if it had been running for
  ``STABLE_SECONDS`` or it is its first quick exit, else after an exponential back-off
  (``BASE_DELAY`` doubling up to ``MAX_DELAY``), so a crash loop costs little and is visible:
  every exit is logged with its status (exit code or signal), every restart counted
  (``parley_process_restarts{process}``), and from the third quick exit in a row the log says
  the child is crash-looping.
- The supervisor itself ends only when ``stop`` is set (serve sets it on SIGINT/SIGTERM); then
  every child gets SIGTERM, and SIGKILL if it is still running ``STOP_TIMEOUT`` seconds later.
- An exited child's live gauges (open sockets) are dropped from the shared metrics directory.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

from prometheus_client import multiprocess

from ops import metrics

log = logging.getLogger("parley.serve")

BASE_DELAY = 0.5
MAX_DELAY = 30.0
STABLE_SECONDS = 30.0
CRASH_LOOP_AFTER = 3
STOP_TIMEOUT = 10.0
POLL_SECONDS = 0.1


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    quick_exits: int = 0  # exits in a row, each before STABLE_SECONDS of running
    start_at: float = 0.0  # when it is due to start (while proc is None)
    starts: int = field(default=0)


def describe(returncode: int) -> str:
    """'exit status 1', or 'killed by SIGKILL' (Popen's negative return codes)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class Supervisor:
    def __init__(self, commands: dict[str, list[str]], env: dict[str, str]) -> None:
        self.children = [Child(name, argv) for name, argv in commands.items()]
        self.env = env

    def run(self, stop: threading.Event) -> None:
        """Start every child, keep them running until ``stop`` is set, then stop them all."""
        try:
            while not stop.is_set():
                now = time.monotonic()
                for child in self.children:
                    if child.proc is None:
                        if now >= child.start_at:
                            self._start(child)
                    elif child.proc.poll() is not None:
                        self._exited(child, now)
                stop.wait(POLL_SECONDS)
        finally:
            self.stop_all()

    def _start(self, child: Child) -> None:
        if child.starts:
            metrics.RESTARTS.labels(child.name).inc()
        child.starts += 1
        child.proc = subprocess.Popen(child.argv, env=self.env)  # noqa: S603 - our own argv
        child.started = time.monotonic()
        log.info("%s started (pid %d)", child.name, child.proc.pid, extra={"child": child.name})

    def _exited(self, child: Child, now: float) -> None:
        proc, child.proc = child.proc, None
        assert proc is not None
        if metrics.MULTIPROCESS:
            multiprocess.mark_process_dead(proc.pid)
        ran = now - child.started
        child.quick_exits = 0 if ran >= STABLE_SECONDS else child.quick_exits + 1
        # One crash: back at once. Again and again: 0.5 s, 1 s, 2 s... up to MAX_DELAY.
        delay = 0.0 if child.quick_exits < 2 else BASE_DELAY * 2 ** (child.quick_exits - 2)
        delay = min(MAX_DELAY, delay)
        child.start_at = now + delay
        status = describe(proc.returncode)
        extra = {"child": child.name, "returncode": proc.returncode}
        if child.quick_exits >= CRASH_LOOP_AFTER:
            log.error(
                "%s (pid %d) %s after %.1fs: crash-looping, %d quick exits in a row; "
                "restarting in %.1fs",
                *(child.name, proc.pid, status, ran, child.quick_exits, delay),
                extra=extra,
            )
        else:
            log.warning(
                "%s (pid %d) %s after %.1fs; restarting in %.1fs",
                *(child.name, proc.pid, status, ran, delay),
                extra=extra,
            )

    def stop_all(self) -> None:
        """SIGTERM to every running child, SIGKILL to those still running after STOP_TIMEOUT."""
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "pid %d still running %.0fs after SIGTERM: killed", proc.pid, STOP_TIMEOUT
                )
                proc.kill()
                proc.wait()
        for child in self.children:
            if child.proc is not None and metrics.MULTIPROCESS:
                multiprocess.mark_process_dead(child.proc.pid)
            child.proc = None
        log.info("all children stopped")
