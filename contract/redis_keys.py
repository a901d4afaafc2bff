"""The names of every Redis key Parley writes: one prefix, and hash tags for Redis Cluster.

Every key is ``<PARLEY_REDIS_PREFIX>:...`` (default ``parley``, today's names), so two
deployments can share one Redis by giving each its own prefix. Streams are named
``<PARLEY_STREAM_PREFIX><topic>``: the stream prefix is empty by default (the streams keep their
names, ``chat.message``, …) and ``<PARLEY_REDIS_PREFIX>:`` when the prefix is not the default,
so a second deployment only sets ``PARLEY_REDIS_PREFIX`` (config/settings/base.py).

Keys that one Lua script touches share a hash tag (``{...}``), so on a Redis Cluster they land
in one slot: ``tagged`` builds them. A key tagged with a stream's name hashes like the stream
itself (a key without braces hashes whole), which is how the relay's change guard shares the
stream's slot without renaming the stream. Prefixes carry no braces (settings refuse them), so
a stream's name is always a valid tag.

Names are read from settings at every call (tests override them); building one is a string
join, cheap next to the Redis round trip it names.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_PREFIX = "parley"
_VALID = re.compile(r"[A-Za-z0-9_.:-]*")


def check_prefix(value: str, *, name: str, empty: bool = False) -> str:
    """``value`` if it is a usable key prefix; ImproperlyConfigured otherwise (braces would
    turn it into a hash tag, spaces and glob characters break SCAN patterns)."""
    if (not value and not empty) or not _VALID.fullmatch(value):
        raise ImproperlyConfigured(
            f"{name}={value!r}: use letters, digits and . _ : - only"
            + ("" if empty else ", at least one")
        )
    return value


def default_stream_prefix(prefix: str) -> str:
    """The streams' prefix when PARLEY_STREAM_PREFIX is unset: none for the default prefix
    (today's stream names), ``<prefix>:`` otherwise."""
    return "" if prefix == DEFAULT_PREFIX else f"{prefix}:"


def key(*parts: object) -> str:
    """``<prefix>:<part>:<part>…``: a key no script shares with another."""
    return ":".join((settings.PARLEY_REDIS_PREFIX, *map(str, parts)))


def tagged(tag: object, *parts: object) -> str:
    """``<prefix>:{<tag>}:<part>…``: keys with the same ``tag`` share one Cluster slot."""
    return ":".join((settings.PARLEY_REDIS_PREFIX, f"{{{tag}}}", *map(str, parts)))


def stream(topic: str) -> str:
    """The Redis Stream that carries ``topic``."""
    return f"{settings.PARLEY_STREAM_PREFIX}{topic}"
