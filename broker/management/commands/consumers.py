"""``manage.py consumers [--json]``: each subscriber's lag, pending, dead letters and workers."""

import json

from django.core.management.base import BaseCommand

from broker import registry
from broker.stats import subscriber_stats
from infra.redis_client import get_redis


class Command(BaseCommand):
    help = "Show each subscriber's lag, pending, dead letters, processed count and workers."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="one JSON object, keyed by name"
        )

    def handle(self, *args, as_json: bool = False, **options) -> None:
        client = get_redis()
        stats = {
            name: subscriber_stats(client, sub) for name, sub in registry.subscribers().items()
        }
        if as_json:
            self.stdout.write(json.dumps(stats, indent=2, sort_keys=True))
            return
        header = f"{'subscriber':<16}{'lag':>8}{'pending':>9}{'dead':>6}{'processed':>11}"
        self.stdout.write(f"{header}  {'last processed':<34}workers")
        for name, s in stats.items():
            self.stdout.write(
                f"{name:<16}{s['lag']:>8}{s['pending']:>9}{s['dead']:>6}{s['processed']:>11}"
                f"  {s['last_processed_at'] or '-':<34}{len(s['workers'])}"
            )
