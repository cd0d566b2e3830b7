"""manage.py secret_set NAME [--workspace SLUG] [--description TEXT] < values.json"""

import sys

from django.core.management.base import BaseCommand, CommandError

from automations.models import DEFAULT_WORKSPACE
from runs.evidence.config import config_actor
from runs.secrets.services import (
    MAX_STDIN_BYTES,
    SecretInputError,
    secret_set,
    values_parse,
)


class Command(BaseCommand):
    help = (
        "Create a secret or replace all its values: a JSON object of key → string "
        'value on stdin, e.g. {"username": "svc", "password": "…"}. The values are '
        "encrypted with RUNS_SECRET_KEYS and never shown again."
    )

    stealth_options = ("stdin",)  # tests pass the values as a stream

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--description", default=None)
        parser.add_argument(
            "--workspace",
            default=DEFAULT_WORKSPACE,
            help="the slug of the workspace the secret belongs to (default: "
            f"{DEFAULT_WORKSPACE}); only its automations and robots read it",
        )

    def handle(self, *args, name, description, workspace, **options):
        stdin = options.get("stdin") or sys.stdin
        if getattr(stdin, "isatty", lambda: False)():
            raise CommandError("give the values as a JSON object on stdin")
        raw = stdin.read(MAX_STDIN_BYTES + 1)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        try:
            values = values_parse(raw)
            with config_actor(label="manage.py secret_set"):
                secret, created = secret_set(
                    name, values, description=description, workspace=workspace
                )
        except SecretInputError as exc:
            raise CommandError(f"secret {name}: {exc}") from None
        verb = "created" if created else "updated"
        self.stdout.write(
            f"secret {secret.name} of workspace {workspace} {verb}: "
            f"keys {', '.join(secret.keys)}"
        )
