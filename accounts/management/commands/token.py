"""``manage.py token create|list|revoke``: API tokens for operators.

token create <username> [--name NAME] [--expires 30d]   prints the token alone on its last line
token list <username>
token revoke <id>
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import ApiToken
from accounts.tokens import create_token, parse_lifetime, revoke_token


class Command(BaseCommand):
    help = "Create, list or revoke API tokens."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token; prints it on the last line")
        create.add_argument("username")
        create.add_argument("--name", default="default")
        create.add_argument(
            "--expires",
            metavar="LIFETIME",
            help="it stops working after this long: 30d, 12h, 90m, 2w, 3600s (default: never)",
        )
        listing = sub.add_parser("list", help="a user's tokens (never the tokens themselves)")
        listing.add_argument("username")
        revoke = sub.add_parser("revoke", help="revoke a token by id")
        revoke.add_argument("id", type=int)

    def handle(self, *args, action: str, **options) -> None:
        if action == "revoke":
            if not revoke_token(token_id=options["id"]):
                raise CommandError(f"no active token with id {options['id']}")
            self.stdout.write(f"revoked token {options['id']}")
            return
        try:
            user = get_user_model().objects.get_by_natural_key(options["username"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user {options['username']!r}") from None
        if action == "create":
            expires_at = None
            if options["expires"] is not None:
                try:
                    expires_at = timezone.now() + parse_lifetime(options["expires"])
                except ValueError as exc:
                    raise CommandError(f"--expires: {exc}") from None
            token, raw = create_token(user=user, name=options["name"], expires_at=expires_at)
            until = f", expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
            self.stdout.write(f"token {token.pk} ({token.name}) for {user.get_username()}{until}:")
            self.stdout.write(raw)
            return
        for token in ApiToken.objects.filter(user=user):
            if token.revoked_at is not None:
                state = f"revoked {token.revoked_at:%Y-%m-%d}"
            elif token.expires_at is not None:
                verb = "expired" if token.is_expired else "expires"
                state = f"{verb} {token.expires_at:%Y-%m-%d}"
            else:
                state = "active"
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(
                f"{token.pk:>6}  {token.hint}…  {token.name:<20} {state:<20} used {used}"
            )
