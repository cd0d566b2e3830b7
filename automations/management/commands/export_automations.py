import json

import yaml
from django.core.management.base import BaseCommand, CommandError

from automations.definitions import automation_export
from automations.models import Automation


class Command(BaseCommand):
    help = "Export automation definitions (the latest version of each) as JSON or YAML."

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", help="only these automations")
        parser.add_argument("--format", choices=["json", "yaml"], default="json")

    def handle(self, *args, slugs, format, **options):
        query = (
            Automation.objects.order_by("slug")
            .select_related("workspace")
            .prefetch_related("owners", "triggers")
        )
        if slugs:
            query = query.filter(slug__in=slugs)
            missing = set(slugs) - set(query.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"no automation named {', '.join(sorted(missing))}")
        definitions = [automation_export(a) for a in query if a.versions.exists()]
        if format == "yaml":
            self.stdout.write(
                yaml.safe_dump(definitions, sort_keys=False, allow_unicode=True)
            )
        else:
            self.stdout.write(json.dumps(definitions, indent=2, ensure_ascii=False))
