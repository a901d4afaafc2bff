"""``manage.py redrive NAME``: apply a subscriber's dead letters again (after a fix).

Each dead letter goes through the same exactly-once path as live events; those that now succeed
are marked redriven, those that still fail stay dead with the new error.
"""

import traceback

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from broker import registry
from broker.models import DeadLetter
from broker.processing import Entry, Processor
from infra.redis_client import get_redis


class Command(BaseCommand):
    help = "Re-apply a subscriber's dead letters."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")

    def handle(self, *args, name: str, **options) -> None:
        try:
            sub = registry.get(name)
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        processor = Processor(sub, get_redis(), worker="redrive")
        letters = DeadLetter.objects.filter(subscriber=name, redriven_at__isnull=True)
        ok = failed = 0
        for letter in tqdm(
            letters.order_by("id"),
            total=letters.count(),
            unit="event",
            desc=f"redrive {name}",
            file=self.stderr,
        ):
            if letter.event is None:  # an unreadable entry: nothing to apply
                failed += 1
                continue
            try:
                processor.commit([Entry(letter.topic, letter.stream_id, letter.event)])
            except Exception as exc:  # noqa: BLE001 - recorded on the letter
                letter.error = "".join(traceback.format_exception(exc)[-5:])
                letter.attempts += 1
                letter.save(update_fields=["error", "attempts"])
                failed += 1
            else:
                letter.redriven_at = timezone.now()
                letter.save(update_fields=["redriven_at"])
                ok += 1
        self.stdout.write(f"redriven: {ok}, still failing: {failed}")
