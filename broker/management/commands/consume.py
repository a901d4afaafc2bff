"""``manage.py consume NAME [NAME ...]``: run subscribers' workers until SIGTERM/SIGINT.

Each named subscriber gets a worker thread. On SIGTERM or SIGINT every worker finishes and
acknowledges the event in hand, then the command exits 0.
"""

import logging
import signal
import threading

import redis
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from broker import groups, registry
from broker.worker import Worker
from infra.heap import freeze_startup_heap
from infra.redis_client import get_redis

log = logging.getLogger("parley.broker")


class Command(BaseCommand):
    help = "Run the workers of one or more subscribers (see settings.PARLEY_SUBSCRIBERS)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("names", nargs="+", metavar="NAME")

    def handle(self, *args, names: list[str], **options) -> None:
        freeze_startup_heap()
        try:
            subs = [registry.get(name) for name in names]
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        try:  # before saying we run: a "now" subscriber sees what is published from here on
            groups.ensure_groups(get_redis(), subs)
        except redis.RedisError:
            pass  # each worker waits Redis out and creates its groups then
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        threads = [
            threading.Thread(target=self._run, args=(sub, stop), name=f"consume-{sub.name}")
            for sub in subs
        ]
        for thread in threads:
            thread.start()
        log.info("consuming: %s (Ctrl-C stops)", ", ".join(names))  # a log line: JSON when asked
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.5)

    @staticmethod
    def _run(sub: registry.Subscriber, stop: threading.Event) -> None:
        try:
            Worker(sub, stop=stop).run()
        finally:
            connections.close_all()
