"""Test data built through the same services the product uses."""

import itertools

from automations.definitions import automation_import

_slugs = itertools.count(1)


def make_automation(*steps, slug=None, publish=True, triggers=None, timeout=None, **extra):
    """Import a definition; `steps` are dicts or action keys ("builtin.echo")."""
    definition = {
        "slug": slug or f"auto-{next(_slugs)}",
        "name": (slug or "Test automation").replace("-", " ").title(),
        "publish": publish,
        "steps": [
            {"name": f"step{i + 1}", "action": s} if isinstance(s, str) else {"name": f"step{i + 1}", **s}
            for i, s in enumerate(steps or ["builtin.echo"])
        ],
        "triggers": triggers if triggers is not None else [{"kind": "manual"}, {"kind": "api"}],
        **extra,
    }
    if timeout:
        definition["run_timeout_seconds"] = timeout
    return automation_import(definition).automation
