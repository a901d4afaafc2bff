"""``manage.py replay NAME --from ID``: apply a subscriber to retained events from a position.

For events a subscriber never saw (it was created with ``start: now``, or its group was lost with
a Redis that keeps nothing on disk). Events already in the subscriber's ledger are skipped, so a
replay never applies an event twice; ``--reprocess`` forgets them first (the handler must then
tolerate seeing them again).
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from broker import registry, streams
from broker.models import ProcessedEvent
from broker.processing import Entry, Processor, parse
from contract.events import stream_key
from infra.redis_client import get_redis

PAGE = 500


class Command(BaseCommand):
    help = "Apply a subscriber to retained events from a stream position (default: the oldest)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--from", dest="start", default="-", help="stream id (default: -)")
        parser.add_argument(
            "--reprocess", action="store_true", help="apply events even if already processed"
        )

    def handle(self, *args, name: str, start: str, reprocess: bool, **options) -> None:
        try:
            sub = registry.get(name)
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        client = get_redis()
        processor = Processor(sub, client, worker="replay")
        applied = 0
        for topic in sub.topics:
            key = stream_key(topic)
            total = streams.count_range(client, key, start)
            cursor = start
            with tqdm(
                total=total, unit="event", desc=f"replay {name} {topic}", file=self.stderr
            ) as bar:
                while True:
                    page = client.xrange(key, min=cursor, max="+", count=PAGE)
                    entries = [
                        e for e in (parse(topic, i, f) for i, f in page) if isinstance(e, Entry)
                    ]
                    if entries:
                        # Forgetting and re-applying commit together: a crash between the
                        # two must not leave events forgotten but not applied.
                        with transaction.atomic():
                            if reprocess:
                                ProcessedEvent.objects.filter(
                                    subscriber=name, event_id__in=[e.event_id for e in entries]
                                ).delete()
                            applied += processor.commit(entries)
                    bar.update(len(page))
                    if len(page) < PAGE:
                        break
                    cursor = f"({streams.decode(page[-1][0])}"
        self.stdout.write(f"applied {applied} events")
