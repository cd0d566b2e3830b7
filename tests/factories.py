"""Test data built through the same services the product uses.

Users too: `make_user` is the one way tests build a person, with permissions and/or
one of the product's roles (the Viewer / Operator / Author groups of migration
runs.0002); the `viewer`, `operator`, `author` and `nobody` fixtures of
tests/conftest.py are built with it. (No factory-boy: model factories would write
rows past the services, the state machines and the ledger chain.)
"""

import importlib
import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from automations.definitions import automation_import

# what the API calls an operator: every permission on runs a person may hold
OPERATOR = [
    "view_run",
    "stop_run",
    "retry_run",
    "resolve_run",
    "archive_run",
    "rerun_run",
    "approve_run",
    "trigger_run",
    "export_run",
]

_slugs = itertools.count(1)


def make_automation(
    *steps, slug=None, publish=True, triggers=None, timeout=None, **extra
):
    """Import a definition; `steps` are dicts or action keys ("builtin.echo")."""
    definition = {
        "slug": slug or f"auto-{next(_slugs)}",
        "name": (slug or "Test automation").replace("-", " ").title(),
        "publish": publish,
        "steps": [
            {"name": f"step{i + 1}", "action": s}
            if isinstance(s, str)
            else {"name": f"step{i + 1}", **s}
            for i, s in enumerate(steps or ["builtin.echo"])
        ],
        "triggers": triggers
        if triggers is not None
        else [{"kind": "manual"}, {"kind": "api"}],
        **extra,
    }
    if timeout:
        definition["run_timeout_seconds"] = timeout
    return automation_import(definition).automation


def groups_ensure() -> None:
    """The role groups of migrations runs.0002 and runs.0020 (a transactional
    test's flush removes them; the migrations' own lists are the truth)."""
    groups = {
        **importlib.import_module("runs.migrations.0002_admin_groups").GROUPS,
        **importlib.import_module("runs.migrations.0020_approver_group").GROUPS,
    }
    secrets = importlib.import_module("runs.migrations.0015_secrets")
    for name, perms in groups.items():
        group, created = Group.objects.get_or_create(name=name)
        if created:
            perms = [*perms, *secrets.SECRET_PERMISSIONS.get(name, [])]
            group.permissions.add(*(_permission(perm) for perm in perms))


def _permission(name: str) -> Permission:
    """`app.codename`, or a bare codename of the runs app."""
    app_label, _, codename = name.rpartition(".")
    return Permission.objects.get(
        content_type__app_label=app_label or "runs", codename=codename
    )


def make_user(username, perms=(), *, role=None, password="pw", **extra):
    """A user with `perms` (codenames, `runs` unless `app.` is given) and/or the
    product role `role` ("Viewer", "Operator", "Author": staff, as in the admin).
    Returned fresh from the database, so its permission cache is empty."""
    if role is not None:
        extra.setdefault("is_staff", True)
    user = get_user_model().objects.create_user(username, password=password, **extra)
    if perms:
        user.user_permissions.add(*(_permission(perm) for perm in perms))
    if role is not None:
        groups_ensure()
        user.groups.add(Group.objects.get(name=role))
    return get_user_model().objects.get(pk=user.pk)
