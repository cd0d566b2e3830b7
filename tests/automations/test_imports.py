"""No import circle hidden inside a function in the automations app: a name lives
on the lowest floor that uses it (models < services < definitions)."""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "automations"


def _function_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                # relative imports of the app's own modules
                if isinstance(inner, ast.ImportFrom) and inner.level:
                    found.append(f"{node.name}: from {'.' * inner.level}{inner.module}")
    return found


@pytest.mark.parametrize("module", ["models.py", "services.py", "definitions.py"])
def test_no_function_level_import_of_the_apps_own_modules(module):
    assert _function_level_imports(APP / module) == []


def test_version_frozen_lives_beside_the_model_that_raises_it():
    from automations import models, services

    assert models.VersionFrozen is services.VersionFrozen
    assert models.VersionFrozen.__module__ == "automations.models"
