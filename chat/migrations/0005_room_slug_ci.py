"""Room slugs unique case-insensitively.

Existing rooms that would break the rule are renamed first (their old address stops working;
the room, its members and messages are untouched):
- among slugs equal but for case, the all-lowercase one keeps its slug (else the oldest room),
  the others become ``<slug>-<id>``;
- a slug that only case separates from the reserved direct-message prefix (``DM-1-2``) becomes
  ``renamed-<id>-<slug>``, so it can never take the address of a real direct conversation.
"""

from django.db import migrations, models
from django.db.models.functions import Lower

DIRECT_PREFIX = "dm-"  # chat.actions.DIRECT_PREFIX, as of this migration
MAX_SLUG = 64


def rename_clashing_slugs(apps, schema_editor):
    Room = apps.get_model("chat", "Room")
    taken = {slug.lower() for slug in Room.objects.values_list("slug", flat=True)}

    def rename(room, candidate):
        candidate = candidate[:MAX_SLUG]
        n = 1
        while candidate.lower() in taken:  # a name some room already has: add a counter
            n += 1
            suffix = f"-{n}"
            candidate = candidate[: MAX_SLUG - len(suffix)] + suffix
        taken.add(candidate.lower())
        room.slug = candidate
        room.save(update_fields=["slug"])

    groups = {}
    for room in Room.objects.order_by("id"):
        # Python, not SQL: SQLite's LIKE ignores case, so it cannot tell "DM-" from "dm-".
        if room.slug.lower().startswith(DIRECT_PREFIX) and not room.slug.startswith(DIRECT_PREFIX):
            rename(room, f"renamed-{room.pk}-{room.slug}")
        else:
            groups.setdefault(room.slug.lower(), []).append(room)
    for lowered, rooms in groups.items():
        keep = next((r for r in rooms if r.slug == lowered), rooms[0])
        for room in rooms:
            if room is not keep:
                rename(room, f"{room.slug[: MAX_SLUG - 21]}-{room.pk}")


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0004_outbox_pending_indexes"),
    ]

    operations = [
        migrations.RunPython(rename_clashing_slugs, migrations.RunPython.noop, elidable=True),
        migrations.AddConstraint(
            model_name="room",
            constraint=models.UniqueConstraint(Lower("slug"), name="room_slug_unique_ci"),
        ),
    ]
