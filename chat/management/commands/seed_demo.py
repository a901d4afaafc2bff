"""``manage.py seed_demo``: users alice and bob, and the public room lobby (idempotent)."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from chat import actions
from chat.models import Room


class Command(BaseCommand):
    help = "Create the demo users (alice, bob) and the public room 'lobby'."

    def handle(self, *args, **options) -> None:
        password = os.environ.get("PARLEY_DEMO_PASSWORD", "parley-demo")
        users = {}
        for name in ("alice", "bob"):
            user, created = get_user_model().objects.get_or_create(username=name)
            if created:
                user.set_password(password)
                user.save()
            users[name] = user
        room = Room.objects.filter(slug="lobby").first()
        if room is None:
            room = actions.create_room(creator=users["alice"], slug="lobby", title="Lobby")
        actions.join_room(user=users["bob"], room=room)
        self.stdout.write(
            f"Demo ready: log in as alice or bob with password {password!r}, room /rooms/lobby/"
        )
