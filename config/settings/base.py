"""Settings shared by every environment; values come from the environment (12-factor).

DATABASE_URL unset -> a SQLite file in the project. REDIS_URL unset -> the project's embedded
Redis (see infra/embedded_redis.py).
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from contract import redis_keys
from infra import embedded_redis, redis_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

# Runtime files: the SQLite test database, the embedded Redis socket.
(BASE_DIR / "var").mkdir(exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "chat",
    "broker",
    "analytics",
    "axes",  # failed-login lockouts (AXES_* below)
]

MIDDLEWARE = [
    "web.middleware.ApiErrorShapeMiddleware",  # first: sees every response (errors under /api/)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "web.text_input.RejectInvalidText",  # NUL or non-UTF-8 in path, query, form: 400
    "django.contrib.sessions.middleware.SessionMiddleware",
    "web.middleware.PageLocaleMiddleware",  # pages in the Accept-Language one of LANGUAGES
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "web.middleware.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a locked-out login into the 429 page
    "web.middleware.RateLimitHeadersMiddleware",  # last: before the error shape sees it
]
# In every environment, so development and the browser tests meet what production enforces:
# scripts only from this site's files (no inline script or handler), nothing from other hosts.
# connect-src 'self' covers ws:/wss: to this host (CSP Level 3).
PARLEY_CSP = env.str(
    "PARLEY_CSP",
    default="; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    ),
)

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.preferences",  # the reader's kept theme
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue on the busy timeout instead
    # of one failing at once with "database is locked" when both upgrade a read lock; WAL lets
    # readers (replays, history) run while a writer commits.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        # Seconds a writer waits for the lock ("database is locked" after).
        "timeout": env.float("PARLEY_SQLITE_TIMEOUT", default=20),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so server processes started by tests share the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": env.str("PARLEY_TEST_SQLITE", default=str(BASE_DIR / "var" / "test-db.sqlite3"))
    }
# Persistent connections: channels' database_sync_to_async closes and reopens a connection on
# every call otherwise (on SQLite that was ~15% of a server's CPU while sockets connected).
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer (live push) and streams (durable topics) ----------------------------
REDIS_URL = env.str("REDIS_URL", default="") or embedded_redis.ensure_default()

# Every key Parley writes starts with this prefix (contract/redis_keys.py): deployments that
# share a Redis give each its own. Streams take PARLEY_STREAM_PREFIX, by default none for the
# default prefix (today's stream names) and "<prefix>:" for any other. Changing either on a
# running deployment is a Redis loss to Parley (broker/loss.py notices and repairs it).
PARLEY_REDIS_PREFIX = redis_keys.check_prefix(
    env.str("PARLEY_REDIS_PREFIX", default=redis_keys.DEFAULT_PREFIX), name="PARLEY_REDIS_PREFIX"
)
PARLEY_STREAM_PREFIX = redis_keys.check_prefix(
    env.str("PARLEY_STREAM_PREFIX", default=redis_keys.default_stream_prefix(PARLEY_REDIS_PREFIX)),
    name="PARLEY_STREAM_PREFIX",
    empty=True,
)

redis_url.parse_sentinel(REDIS_URL)  # a malformed redis+sentinel:// URL fails at start-up

CHANNEL_LAYERS = {
    "default": {
        # channels-redis' pub/sub layer (group_send, channels) and Parley's own fan-out hub (one
        # subscriber connection per process, reconnect announcements): chat/layers.py. Both
        # connect to REDIS_URL (a Sentinel-managed primary too) with infra/redis_client.py's
        # options.
        "BACKEND": "chat.layers.ParleyChannelLayer",
        "CONFIG": {
            "url": REDIS_URL,
            # Pub/sub channel names (no keys): the same prefix unless set apart.
            "prefix": env.str("PARLEY_LAYER_PREFIX", default=PARLEY_REDIS_PREFIX),
        },
    },
}

PARLEY = {
    # Longest message body, in characters.
    "MAX_BODY_CHARS": 4000,
    # Largest WebSocket frame the server parses, in bytes (a body of 4,000 emoji fits).
    "MAX_FRAME_BYTES": 64 * 1024,
    # Messages a user may post per window, across all their sockets and the REST API.
    "RATE_LIMIT_MESSAGES": env.int("PARLEY_RATE_LIMIT_MESSAGES", default=30),
    "RATE_LIMIT_WINDOW_SECONDS": env.int("PARLEY_RATE_LIMIT_WINDOW_SECONDS", default=10),
    # Client frames of any kind (posts, pings, syncs, typing, invalid ones) one socket may send
    # per RATE_LIMIT_WINDOW_SECONDS; beyond it they are refused with rate_limited (chat.limits).
    "RATE_LIMIT_FRAMES": env.int("PARLEY_RATE_LIMIT_FRAMES", default=120),
    # Open room and /ws/me/ sockets per user, across all server processes (close code 4409).
    "MAX_SOCKETS_PER_USER": env.int("PARLEY_MAX_SOCKETS_PER_USER", default=20),
    "MAX_SUBSCRIPTIONS": env.int("PARLEY_MAX_SUBSCRIPTIONS", default=100),  # rooms per /ws/
    # Presence sessions (a user's sockets in a room, first open to last close: one
    # user.connected/user.disconnected pair) recorded per user and room per minute (chat.presence).
    "PRESENCE_SESSIONS_PER_MINUTE": env.int("PARLEY_PRESENCE_SESSIONS_PER_MINUTE", default=10),
    # Seconds a client has to send a whole HTTP request (and a WebSocket handshake) after
    # connecting or after the previous response; then the connection is closed (slowloris).
    "HTTP_REQUEST_TIMEOUT": env.float("PARLEY_HTTP_REQUEST_TIMEOUT", default=20.0),
    # Sign-up attempts (POSTs of /accounts/signup/) per client address per hour.
    "SIGNUPS_PER_HOUR": env.int("PARLEY_SIGNUPS_PER_HOUR", default=20),
    # Error frames a socket may earn in a row before it is closed as a flood (code 4429).
    "FLOOD_CLOSE_AFTER_ERRORS": 50,
    # Unsafe REST requests per user per minute (messages: their own limit).
    "API_WRITES_PER_MINUTE": env.int("PARLEY_API_WRITES_PER_MINUTE", default=120),
    # Messages per replay page, and live events a replay keeps (chat.delivery): memory per socket.
    "REPLAY_PAGE_SIZE": 200,
    # A client that does not read (realtime.sockets): a socket's replays, acks and pongs wait while
    # the server holds more than this for it unsent...
    "WRITE_HIGH_WATER_BYTES": env.int("PARLEY_WRITE_HIGH_WATER_BYTES", default=256 * 1024),
    # ...and a socket holding more than this unsent (live frames never wait)...
    "SLOW_CLIENT_LIMIT_BYTES": env.int("PARLEY_SLOW_CLIENT_LIMIT_BYTES", default=4 * 1024 * 1024),
    # ...for this long, or whose replay waited this long, is closed with 4408; its close frame
    # then has as long again to reach the client before the connection is dropped.
    "SLOW_CLIENT_GRACE_SECONDS": env.float("PARLEY_SLOW_CLIENT_GRACE_SECONDS", default=10.0),
    # The relay's reconciliation sweep of the outbox (only the recovery path waits on it).
    "RELAY_SWEEP_SECONDS": env.float("PARLEY_RELAY_SWEEP_SECONDS", default=1.0),
    # How often the relay looks for events subscribers skipped unprocessed (chat/reconcile.py).
    "RELAY_RECONCILE_SECONDS": env.float("PARLEY_RELAY_RECONCILE_SECONDS", default=5.0),
    # Outbox rows younger than this are left to the fast path that committed them.
    "RELAY_GRACE_SECONDS": env.float("PARLEY_RELAY_GRACE_SECONDS", default=0.5),
    # Published outbox rows are kept this long (for the admin), then deleted once every started
    # subscriber of their topic processed them (republished after a Redis loss: chat/repair.py)...
    "OUTBOX_RETENTION_HOURS": env.int("PARLEY_OUTBOX_RETENTION_HOURS", default=24),
    # ...or at the latest after this long, processed or not: the cap on what a subscriber that
    # stays away (or a Redis loss noticed later than this) can recover from the outbox.
    "OUTBOX_MAX_RETENTION_HOURS": env.int("PARLEY_OUTBOX_MAX_RETENTION_HOURS", default=24 * 7),
    # A token's last_used_at is written at most once per this many seconds (per token)...
    "TOKEN_LAST_USED_EVERY_SECONDS": env.int("PARLEY_TOKEN_LAST_USED_EVERY_SECONDS", default=60),
    # ...and the uses a server process noted are written together this often (accounts.last_used).
    "TOKEN_LAST_USED_FLUSH_SECONDS": env.float("PARLEY_TOKEN_LAST_USED_FLUSH_SECONDS", default=1.0),
    # Threads per server process for the sockets' database work (infra.db).
    "DB_THREADS": env.int("PARLEY_DB_THREADS", default=4),
    # Sockets per process doing connect work at once; others wait (chat.consumers.base).
    "CONNECT_CONCURRENCY": env.int("PARLEY_CONNECT_CONCURRENCY", default=16),
}

# --- Deleting a user (accounts.actions.delete_user; README "Deleting a user and exporting data")
# What happens to a deleted user's messages: "tombstone" (bodies emptied, like a moderator's
# delete) or "anonymize" (kept, shown as the placeholder account below). Both keep seqs gapless.
PARLEY_DELETED_USER_MESSAGES = env.str("PARLEY_DELETED_USER_MESSAGES", default="tombstone")
# The placeholder account deleted users' messages are attributed to (made on first use,
# inactive, no password: nobody logs in as it).
PARLEY_DELETED_USER_NAME = env.str("PARLEY_DELETED_USER_NAME", default="deleted-user")

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the browser, with CSRF
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["web.api.WriteThrottle"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "web.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parley API",
    "DESCRIPTION": (
        "REST API of Parley. Authenticate with `Authorization: Bearer <token>` (create tokens "
        "at /api/tokens/ or with `manage.py token create`). Live messages come over the "
        "WebSocket: see /api/asyncapi.yaml.\n\n"
        "Errors are `{code, detail}` (validation errors add `fields`); each operation lists "
        "its codes per status. Outside the operations listed here the API answers in the same "
        "shape only: 404 `not_found` (no such path), 405 `method_not_allowed` (after 401 "
        "and 429 as for any request), 500 `server_error`. Writes carry `RateLimit-Limit`, "
        "`RateLimit-Remaining` and `RateLimit-Reset`; a 429 carries `Retry-After` (seconds)."
        "\n\n"
        "Change numbers: every message has `change`, the room change number of its latest "
        "state; a page of messages has the room's `last_seq` and `last_change`, read before "
        "the page. To go live after paging, connect the room socket with `after_seq` = the "
        "highest seq paged and `after_change` = the smallest `last_change` of the pages read. "
        "`Idempotency-Key` and the socket's `client_id` are one namespace per user."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "web.openapi.postprocess",  # error codes per operation, response headers
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No online validator: Swagger UI would otherwise load a badge from validator.swagger.io,
    # telling a third party where the schema is (the docs use no host but this one).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
    # No "SECURITY" here: bearerAuth and cookieAuth come from the authentication classes, and
    # naming them again listed each twice on every operation.
}
# Requests larger than this are refused with 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

# --- Subscribers: consumer groups on the topic streams (see broker/registry.py) --------------
PARLEY_SUBSCRIBERS = {
    "analytics": {
        "handler": "analytics.subscriber.handle",
        "topics": ["chat.message", "chat.room", "chat.presence"],
    },
    "mentions": {"handler": "chat.mentions.handle", "topics": ["chat.message"], "start": "now"},
}
PARLEY_BROKER = {
    "BATCH": env.int("PARLEY_BROKER_BATCH", default=200),  # entries read and committed at once
    "BLOCK_MS": 1000,  # longest blocking read: how soon a worker notices SIGTERM
    # After a read smaller than BATCH, wait this long so the next events arrive as a batch:
    # subscribers' effects lag by at most this much, for a fraction of the CPU per event.
    "LINGER_MS": env.int("PARLEY_BROKER_LINGER_MS", default=500),
    "CLAIM_IDLE_MS": env.int("PARLEY_CLAIM_IDLE_MS", default=30_000),  # then a dead worker's
    # unacknowledged entries are taken over by another
    "MAX_ATTEMPTS": 5,  # then an event is dead-lettered
    "RETRY_BASE_SECONDS": env.float("PARLEY_RETRY_BASE_SECONDS", default=0.5),  # doubling
    "STREAM_MAXLEN": env.int("PARLEY_STREAM_MAXLEN", default=100_000),  # trimmed to this...
    "STREAM_HARD_MAXLEN": env.int("PARLEY_STREAM_HARD_MAXLEN", default=1_000_000),  # ...unless
    # unconsumed; beyond this, unconsumed events are dropped (logged, counted)
}

# --- Operations: readiness (/readyz) and metrics (/metrics); see ops/ and README, Production ----
PARLEY_HEALTH = {
    # /readyz answers 503 when the relay's last sweep is older than this...
    "RELAY_STALE_SECONDS": env.float("PARLEY_READY_RELAY_STALE_SECONDS", default=10),
    # ...or the oldest unpublished outbox row is older than this...
    "OUTBOX_MAX_AGE_SECONDS": env.float("PARLEY_READY_OUTBOX_MAX_AGE_SECONDS", default=30),
    # ...or one of these subscribers (None: every registered one) has had no live worker this long.
    "SUBSCRIBERS": env.list("PARLEY_READY_SUBSCRIBERS", default=None),
    "WORKER_STALE_SECONDS": env.float("PARLEY_READY_WORKER_STALE_SECONDS", default=10),
}
# --- Graceful restart: SIGTERM to a server process (ops/drain.py; README, Production) --------
PARLEY_DRAIN = {
    # After SIGTERM /readyz answers 503 this long before the process stops accepting
    # connections: time for a load balancer's readiness probe to take it out of rotation.
    "DELAY_SECONDS": env.float("PARLEY_DRAIN_SECONDS", default=5.0),
    # Then open sockets finish the posts they received and are closed with 1012; whatever has
    # not ended this long after is dropped when the process exits.
    "CLOSE_TIMEOUT_SECONDS": env.float("PARLEY_DRAIN_CLOSE_TIMEOUT_SECONDS", default=5.0),
}
PARLEY_METRICS = {
    # Who may read /metrics: a client address in these networks, or this bearer token (if set).
    "ALLOWED_NETWORKS": env.list(
        "PARLEY_METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"]
    ),
    "TOKEN": env.str("PARLEY_METRICS_TOKEN", default=""),
}

# --- Auth, i18n, static ------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed logins (every form that authenticates with a password: /accounts/login/ and
# /admin/login/; the API takes tokens, never passwords) are counted per account and per client
# address (REMOTE_ADDR; behind a proxy, set AXES_IPWARE_* so the client's address is used).
# After AXES_FAILURE_LIMIT failures for one account (from anywhere) or from one address (for any
# account), that account or address is refused, even with the right password, with a 429 page,
# until AXES_COOLOFF_TIME has passed without another failure (failures during the lockout
# restart it). A successful login resets the failures it matched.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("PARLEY_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("PARLEY_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_DISABLE_ACCESS_LOG = True  # failures are what it needs; no row per successful login
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
# The page language follows the browser's Accept-Language (LocaleMiddleware). English is the source
# text; French proves every user-facing string goes through gettext (locale/, .mo committed).
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Only where collectstatic is used (production); development serves the source folders.
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
# Serve static files from the app itself (no CDN, no separate web server); in development
# straight from the source folders, without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# LOG_FORMAT=json: one JSON object per line (ops/logs.py), for log shippers; the ASGI servers'
# own loggers (uvicorn's, daphne's) are routed through the same handler.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain").lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "ops.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "parley": {"level": env.str("PARLEY_LOG_LEVEL", default="INFO")},
        **{
            name: {"handlers": ["console"], "level": "INFO", "propagate": False}
            for name in (("uvicorn", "uvicorn.error", "daphne") if LOG_FORMAT == "json" else ())
        },
    },
}
