"""``manage.py token create|list|revoke``: API tokens for operators.

token create <username> [--name NAME]   prints the token alone on its last line
token list <username>
token revoke <id>
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiToken
from accounts.tokens import create_token, revoke_token


class Command(BaseCommand):
    help = "Create, list or revoke API tokens."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token; prints it on the last line")
        create.add_argument("username")
        create.add_argument("--name", default="default")
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
            token, raw = create_token(user=user, name=options["name"])
            self.stdout.write(f"token {token.pk} ({token.name}) for {user.get_username()}:")
            self.stdout.write(raw)
            return
        for token in ApiToken.objects.filter(user=user):
            state = "active" if token.is_active else f"revoked {token.revoked_at:%Y-%m-%d}"
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(
                f"{token.pk:>6}  {token.hint}…  {token.name:<20} {state:<20} used {used}"
            )
