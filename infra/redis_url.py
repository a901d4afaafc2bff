"""What ``REDIS_URL`` may name: one Redis, or a primary that Redis Sentinel manages.

- ``redis://[:password@]host:6379/0``, ``rediss://...``, ``unix:///path/redis.sock?db=0``:
  one server (redis-py's URL forms).
- ``redis+sentinel://[:password@]host1:26379,host2:26379,host3:26379/mymaster/0``: ask the
  sentinels (any number, comma-separated) for the current primary of the service ``mymaster``,
  database 0 (the default). The password, if any, is the primary's; the sentinels are asked
  without one. After a failover every client follows the new primary (infra/redis_client.py,
  and channels-redis' own Sentinel support for the channel layer).

Pure parsing, no Django: the settings use it to build the channel layer's host.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelURL:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None


def parse_sentinel(url: str) -> SentinelURL | None:
    """The Sentinel form of ``url``, or None for a plain Redis URL. Raises ValueError with the
    expected form when a ``redis+sentinel://`` URL is malformed."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        return None
    form = f"expected {SCHEME}://[:password@]host:port[,host:port...]/service[/db]"
    netloc = parts.netloc
    password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        password = unquote(auth.split(":", 1)[1] if ":" in auth else auth) or None
    sentinels = []
    for hostport in filter(None, netloc.split(",")):
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
        try:
            sentinels.append((host or hostport, int(port) if port else DEFAULT_SENTINEL_PORT))
        except ValueError:
            raise ValueError(f"bad sentinel address {hostport!r} in REDIS_URL: {form}") from None
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not path or len(path) > 2:
        raise ValueError(f"REDIS_URL {SCHEME}:// names no sentinel or no service: {form}")
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise ValueError(f"bad database {path[1]!r} in REDIS_URL: {form}") from None
    return SentinelURL(tuple(sentinels), unquote(path[0]), db, password)


def layer_host(url: str, **options: object) -> dict:
    """A channels-redis host entry for ``url`` with connection ``options``."""
    spec = parse_sentinel(url)
    if spec is None:
        return {"address": url, **options}
    return {
        "master_name": spec.service,
        "sentinels": [list(s) for s in spec.sentinels],
        "db": spec.db,
        **({"password": spec.password} if spec.password else {}),
        **options,
    }
