"""Development settings: what `make run` and `manage.py` use by default."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="parley-local-development-only-not-secret")
