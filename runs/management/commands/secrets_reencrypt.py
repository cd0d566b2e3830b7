"""manage.py secrets_reencrypt (after putting a new key first in RUNS_SECRET_KEYS)"""

from django.core.management.base import BaseCommand, CommandError

from runs.evidence.config import config_actor
from runs.secrets.crypto import UndecryptableError
from runs.secrets.services import secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret and webhook secret under the newest key of "
        "RUNS_SECRET_KEYS; then the older keys can be dropped from the setting."
    )

    def handle(self, *args, **options):
        try:
            with config_actor(label="manage.py secrets_reencrypt"):
                secrets, webhooks = secrets_reencrypt()
        except UndecryptableError as exc:
            raise CommandError(f"{exc}: nothing was re-encrypted") from None
        self.stdout.write(
            f"re-encrypted {secrets} secret(s) and {webhooks} webhook secret(s) "
            "under the newest key"
        )
