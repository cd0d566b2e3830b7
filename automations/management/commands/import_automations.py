import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from automations.definition_files import (
    DefinitionsFileError,
    definitions_load,
    definitions_size_check,
)
from automations.definitions import DefinitionError, automation_import
from runs.evidence.config import config_actor


def load_definitions(path: Path) -> list:
    """The definitions of one file: bounded in size, YAML without aliases."""
    try:
        definitions_size_check(path.stat().st_size)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read: {exc}") from None
    except DefinitionsFileError as exc:
        raise CommandError(f"{path}: {exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = definitions_load(text, documents=True)
            data = [d for d in data if d is not None]
            if len(data) == 1 and isinstance(data[0], list):
                data = data[0]
        else:
            data = json.loads(text)
    except json.JSONDecodeError as exc:
        kind = path.suffix.lstrip(".") or "JSON"
        raise CommandError(f"{path}: not valid {kind}: {exc}") from None
    except DefinitionsFileError as exc:
        raise CommandError(f"{path}: {exc}") from None
    return data if isinstance(data, list) else [data]


class Command(BaseCommand):
    help = (
        "Import automation definitions from JSON or YAML files. A changed definition "
        'becomes a new version; "publish": true publishes it. All files are imported '
        "in one transaction: one bad definition imports nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path)

    def handle(self, *args, files, **options):
        results = []
        with transaction.atomic(), config_actor(label="manage.py import_automations"):
            for path in files:
                for index, definition in enumerate(load_definitions(path)):
                    where = f"{path}" + (f" [{index}]" if index else "")
                    try:
                        results.append(automation_import(definition))
                    except DefinitionError as exc:
                        raise CommandError(
                            f"{where}: {exc} (nothing was imported)"
                        ) from None
        for result in results:
            self.stdout.write(result.summary())
