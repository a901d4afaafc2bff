"""``LOG_FORMAT=json``: one JSON object per log line, for log shippers (settings.LOGGING).

Each line has ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``pid`` and
``process`` (the command: daphne, relay, consume...), ``exc`` when an exception is logged, and
every ``extra=`` field the call passed (ids such as ``subscriber``, ``worker``, ``room``,
``socket``), so a shipper can filter on them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _process_name() -> str:
    argv = sys.argv
    if len(argv) > 1 and argv[0].endswith("manage.py"):
        return argv[1]
    if "-m" in sys.orig_argv:
        return sys.orig_argv[sys.orig_argv.index("-m") + 1]
    return os.path.basename(argv[0]) if argv else "python"


class JsonFormatter(logging.Formatter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        self.process_name = _process_name()

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            "process": self.process_name,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
