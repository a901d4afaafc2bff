"""LOG_FORMAT=json: one JSON object per line, from the formatter and from a real process."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.request

import pytest

from infra.embedded_redis import free_port
from ops.logs import JsonFormatter
from tests.support.procs import BASE_DIR, Process, server_env


def test_a_record_becomes_one_json_line_with_its_ids():
    record = logging.LogRecord("parley.broker", logging.WARNING, __file__, 1, "lag %d", (7,), None)
    record.subscriber = "analytics"  # what extra={"subscriber": ...} sets
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "WARNING" and data["logger"] == "parley.broker"
    assert data["message"] == "lag 7" and data["subscriber"] == "analytics"
    assert data["ts"].endswith("+00:00") and isinstance(data["pid"], int)


def test_an_exception_stays_on_its_line():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exc"]


@pytest.mark.django_db(transaction=True)
def test_a_command_logs_json_lines_only():
    done = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "relay", "--once"],
        env=server_env(LOG_FORMAT="json"),
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    started = next(r for r in records if r["message"].startswith("relay started"))
    assert started["logger"] == "parley.relay" and started["process"] == "relay"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_serve_and_its_server_log_only_json(tmp_path):
    port = free_port()
    serve = Process(
        "serve",
        [
            sys.executable,
            str(BASE_DIR / "manage.py"),
            "serve",
            "--only",
            "web",
            "--port",
            str(port),
        ],
        server_env(LOG_FORMAT="json"),
        tmp_path,
    )
    serve.ready_line = "Listening on TCP address"  # daphne's own line, as JSON
    serve.start()
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200  # daphne would log a plain access line for it
    finally:
        serve.stop()
    records = [json.loads(line) for line in serve.output().splitlines() if line.strip()]
    loggers = {r["logger"] for r in records}
    assert {"parley.serve", "daphne.server"} <= loggers, loggers


def test_an_unknown_log_format_is_refused_at_start():
    done = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "check"],
        env=server_env(LOG_FORMAT="xml"),
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "LOG_FORMAT must be 'plain' or 'json', not 'xml'" in done.stderr
