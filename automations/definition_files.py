"""Reading definitions files (`import_automations`, the admin upload): bounded in
size before they are read, JSON or YAML without aliases, imported all or nothing.
Validating and importing one definition is `automations.definitions`."""

import yaml
from django.db import transaction

from runs.conf import runs_settings

from .definitions import DefinitionError, automation_import
from .diffs import version_diff_rows


class DefinitionsFileError(ValueError):
    """A definitions file that cannot be read at all (not JSON/YAML, too big)."""


def definitions_size_check(size: int) -> None:
    """Refuse a definitions file over RUNS_MAX_DEFINITIONS_BYTES (before reading)."""
    limit = runs_settings.MAX_DEFINITIONS_BYTES
    if size > limit:
        raise DefinitionsFileError(
            f"the file is {size} bytes, larger than the limit of {limit} bytes "
            "(RUNS_MAX_DEFINITIONS_BYTES)"
        )


def _yaml_loader():
    class NoAliasLoader(yaml.SafeLoader):
        """YAML without aliases: `*a` repeats a node without its bytes, so 517
        bytes of nested aliases expanded to 844 MB when the definition was hashed
        (security review, finding 6). Definitions never need them."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"YAML aliases (*{event.anchor}) are not allowed in definitions",
                    event.start_mark,
                )
            return super().compose_node(parent, index)

    return NoAliasLoader


def definitions_load(text: str, *, documents: bool = False):
    """Parse JSON or YAML text (JSON is YAML), refusing aliases; with `documents`,
    the list of its YAML documents. Raises DefinitionsFileError."""
    definitions_size_check(len(text.encode("utf-8", "surrogatepass")))
    try:
        if documents:
            return list(yaml.load_all(text, Loader=_yaml_loader()))
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise DefinitionsFileError(f"not valid JSON or YAML: {exc}") from None


def definitions_parse(raw: bytes | str) -> list:
    """Read a JSON or YAML file of one definition or a list of them."""
    if isinstance(raw, bytes):
        definitions_size_check(len(raw))
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DefinitionsFileError("the file is not UTF-8 text") from None
    data = definitions_load(raw)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise DefinitionsFileError(
            "expected a definition (an object) or a non-empty list of definitions"
        )
    return data


def definitions_import(definitions: list, *, actor=None, dry_run: bool = False):
    """Import definitions all or nothing: returns [(index, ImportResult | error)].

    Any error rolls every definition back. With `dry_run`, the import is done and
    rolled back, so the results preview what a real import would do.
    """

    class _Rollback(Exception):
        pass

    outcomes = []
    try:
        with transaction.atomic():
            for index, definition in enumerate(definitions):
                try:
                    with transaction.atomic():
                        result = automation_import(definition, actor=actor)
                        if dry_run and result.new_version:
                            # now, while the new version's steps exist
                            result.diff = version_diff_rows(
                                result.previous, result.version
                            )
                        outcomes.append((index, result))
                except DefinitionError as exc:
                    outcomes.append((index, str(exc)))
            if dry_run or any(isinstance(o, str) for _, o in outcomes):
                raise _Rollback
    except _Rollback:
        pass
    return outcomes
