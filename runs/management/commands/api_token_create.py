"""manage.py api_token_create USERNAME [--expires-days N] [--name NAME]"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from runs.api.tokens import DEFAULT_EXPIRES_DAYS, MAX_EXPIRES_DAYS, api_token_create


class Command(BaseCommand):
    help = (
        "Create an API token for a user and print it once (only its digest is "
        "stored). Send it as `Authorization: Token <key>`."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--expires-days",
            type=int,
            default=DEFAULT_EXPIRES_DAYS,
            help=f"days until the token expires (1..{MAX_EXPIRES_DAYS}, "
            f"default {DEFAULT_EXPIRES_DAYS})",
        )
        parser.add_argument("--name", default="", help="what the token is for")

    def handle(self, *args, username, expires_days, name, **options):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(f"no user {username!r}") from None
        if not 1 <= expires_days <= MAX_EXPIRES_DAYS:
            raise CommandError(
                f"--expires-days must be between 1 and {MAX_EXPIRES_DAYS}"
            )
        token, key = api_token_create(user=user, name=name, expires_days=expires_days)
        self.stdout.write(key)
        self.stderr.write(
            f"API token {token.name or '(unnamed)'} for {username}, expires "
            f"{token.expiry:%Y-%m-%d %H:%M} UTC. It is not shown again."
        )
