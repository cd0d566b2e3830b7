from django.core.management.base import BaseCommand, CommandError

from automations.definitions import SLUG_RE
from automations.services import workspace_add
from runs.evidence.config import config_actor


class Command(BaseCommand):
    help = "Create a workspace (or rename one): manage.py workspace_add SLUG [--name]."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="")

    def handle(self, *args, slug, name, **options):
        if not SLUG_RE.match(slug) or len(slug) > 100:
            raise CommandError(
                f"slug: letters, digits, - and _ (at most 100), got {slug!r}"
            )
        if len(name) > 200:
            raise CommandError("--name: at most 200 characters")
        with config_actor(label="manage.py workspace_add"):
            workspace, created = workspace_add(slug=slug, name=name)
        verb = "created" if created else "exists"
        self.stdout.write(f"workspace {workspace.slug} ({workspace.name}) {verb}")
