"""Settings for the test suite.

Unset REDIS_URL gets an embedded Redis of the suite's own (a temporary socket), so a running
`make run` is never touched by tests; server processes the tests start inherit it.
"""

import os
import tempfile

if not os.environ.get("REDIS_URL"):
    os.environ.setdefault(
        "PARLEY_EMBEDDED_REDIS_DIR", tempfile.mkdtemp(prefix="parley-test-redis-")
    )

from .base import *  # noqa: E402, F403
from .base import DATABASES, PARLEY, env  # noqa: E402

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY", default="parley-test-only-not-secret")
# No persistent connections: a connection kept by a worker thread would stop the test database
# from being dropped at the end of the run.
DATABASES["default"]["CONN_MAX_AGE"] = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
PARLEY["RELAY_SWEEP_SECONDS"] = 0.2
PARLEY["RELAY_GRACE_SECONDS"] = 0.2
