"""The directory prometheus-client's multiprocess mode shares between Parley's processes.

It must be in the environment before ``prometheus_client`` is first imported (Django's setup
imports it), so ``manage.py serve`` calls ``prepare()`` from manage.py, before Django starts;
serve's children inherit it. Standard library only: nothing else is loaded yet.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> Path:
    """Use ``$PROMETHEUS_MULTIPROC_DIR`` (emptied of a previous run's files: prometheus-client
    requires a clean directory per run), or make a private one, removed when this process exits."""
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return path
    path = Path(tempfile.mkdtemp(prefix="parley-metrics-"))
    os.environ[ENV] = str(path)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
