"""What changed between two versions: the diff of their definitions.

Only what a version holds is compared (its steps and run timeout, the input of
`definitions.definition_hash`); what belongs to the automation (slug, name,
triggers, owners, limits) or says where a version stands (`publish`) is the same
for every version or is no definition at all, and would show as noise."""

import difflib
import json

from .definitions import automation_export

# the keys of a definition a version holds (definition_hash hashes these)
VERSION_KEYS = ("run_timeout_seconds", "steps")


def version_definition_lines(version) -> list[str]:
    if version is None:
        return []
    data = automation_export(version.automation, version)
    held = {key: data[key] for key in VERSION_KEYS if key in data}
    return json.dumps(held, indent=2).splitlines()


def version_diff_rows(against, version) -> list[tuple[str, str]]:
    """(css class, line) of the unified diff from `against` (None: nothing) to
    `version`; classes add, del, hunk or ''. No rows: no difference."""
    diff = difflib.unified_diff(
        version_definition_lines(against),
        version_definition_lines(version),
        fromfile=f"v{against.number}" if against else "(none)",
        tofile=f"v{version.number}",
        lineterm="",
    )
    return [
        (
            "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else "hunk"
            if line.startswith("@@")
            else "",
            line,
        )
        for line in diff
    ]
