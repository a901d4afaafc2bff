"""``manage.py user delete|export``: a person leaving for good, and their data.

user delete <username> [--mode tombstone|anonymize] [--yes]
    delete the account for good (accounts.actions.delete_user); asks first unless --yes
user export <username> [--output FILE]
    their data as JSON (accounts.export) to stdout or FILE, streamed
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.actions import AccountError, delete_user
from accounts.export import export_chunks
from chat.departure import MODES


class Command(BaseCommand):
    help = "Delete a user for good, or export their data as JSON."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        delete = sub.add_parser("delete", help="delete a user; their messages by --mode")
        delete.add_argument("username")
        delete.add_argument(
            "--mode", choices=MODES, help="default: settings.PARLEY_DELETED_USER_MESSAGES"
        )
        delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        export = sub.add_parser("export", help="a user's data as JSON")
        export.add_argument("username")
        export.add_argument("--output", "-o", help="a file to write (default: stdout)")

    def handle(self, *args, action: str, username: str, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if action == "export":
            self._export(user, options["output"])
            return
        if not options["yes"]:
            answer = input(f"Delete {username!r} for good? Type the username to confirm: ")
            if answer != username:
                raise CommandError("not confirmed; nothing changed")
        try:
            done = delete_user(user=user, mode=options["mode"])
        except AccountError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(
            f"deleted {done.username}: {done.messages} messages, {done.memberships} memberships,"
            f" {done.tokens} tokens, {done.sessions} sessions"
        )
        for room, heir in done.rooms_handed_over:
            self.stdout.write(f"  room {room}: owner now {heir or '(none: no other member)'}")

    def _export(self, user, output: str | None) -> None:
        if output is None:
            for piece in export_chunks(user):
                self.stdout.write(piece, ending="")
            self.stdout.write("")
            return
        with open(output, "w", encoding="utf-8") as out:
            out.writelines(export_chunks(user))
        self.stderr.write(f"wrote {output}")
