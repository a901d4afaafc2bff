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
from .base import DATABASES, PARLEY, PARLEY_BROKER, PARLEY_DRAIN, PARLEY_SUBSCRIBERS, env  # noqa: E402

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY", default="parley-test-only-not-secret")
# No persistent connections: a connection kept by a worker thread would stop the test database
# from being dropped at the end of the run.
DATABASES["default"]["CONN_MAX_AGE"] = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
PARLEY["RELAY_SWEEP_SECONDS"] = 0.2
PARLEY["RELAY_GRACE_SECONDS"] = 0.2
PARLEY["RELAY_RECONCILE_SECONDS"] = 1.0
# Tests open many sockets as one user and send many frames; the limits' own tests lower these.
PARLEY["RATE_LIMIT_FRAMES"] = env.int("PARLEY_RATE_LIMIT_FRAMES", default=100_000)
PARLEY["MAX_SOCKETS_PER_USER"] = env.int("PARLEY_MAX_SOCKETS_PER_USER", default=10_000)
PARLEY["SIGNUPS_PER_HOUR"] = env.int("PARLEY_SIGNUPS_PER_HOUR", default=10_000)
# A test's token uses are written by its own flush_last_used() (a timer's write would wait on,
# or land in, another test's rows); tests/accounts/test_token_last_used.py times it.
PARLEY["TOKEN_LAST_USED_FLUSH_SECONDS"] = 3600.0
# A server process the tests stop has no load balancer to wait for: SIGTERM drains at once
# (5 s per stopped server otherwise). tests/ops/test_drain.py and the nginx test set their own.
PARLEY_DRAIN["DELAY_SECONDS"] = env.float("PARLEY_DRAIN_SECONDS", default=0.0)

# Subscribers that exist only here (tests/support/subscribers.py): adding one touches no producer.
PARLEY_SUBSCRIBERS = {
    **PARLEY_SUBSCRIBERS,
    "recorder": {"handler": "tests.support.subscribers.record", "topics": ["chat.message"]},
    "picky": {
        "handler": "tests.support.subscribers.refuse_poison",
        "topics": ["chat.message"],
        "max_attempts": 3,
    },
    "slow_analytics": {
        "handler": "tests.support.subscribers.slow_analytics",
        "topics": ["chat.message"],
    },
}
PARLEY_BROKER = {
    **PARLEY_BROKER,
    "RETRY_BASE_SECONDS": 0.05,
    "CLAIM_IDLE_MS": env.int("PARLEY_CLAIM_IDLE_MS", default=1500),
    "BLOCK_MS": 300,
    "LINGER_MS": env.int("PARLEY_BROKER_LINGER_MS", default=0),  # tests/broker set it to test it
}
