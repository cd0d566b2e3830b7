"""Who may do what in which workspace: the one home of the rule (DESIGN "Workspace").

A permission (`runs.view_run`, `runs.stop_run`, `automations.change_automation`, …)
is held
- everywhere: by a superuser, or through the person's groups and own permissions
  (the groups Viewer, Operator, Approver and Author are tenant-wide roles, like
  UiPath's tenant roles);
- in one workspace: through a `Membership` whose role names the group of the same
  name (`operator` → Operator): that group's permissions, there only.

Every door starts from here: admin querysets, filters and actions, the dashboard and
reports, exports and evidence packs, the API (`runs.api.permissions.runs_visible_to`
narrows further to a token's grants), notifications and approvals. A door that
shows or changes an object of a workspace where its caller holds no permission
answers as for an object that does not exist (404), never 403.
"""

from django.contrib.auth.models import Permission

from .models import (
    DEFAULT_WORKSPACE,
    Automation,
    Membership,
    Workspace,
    WorkspaceRole,
    default_workspace_id,
)

# a workspace role means the permissions of this group, in that workspace only
ROLE_GROUPS = {
    WorkspaceRole.VIEWER: "Viewer",
    WorkspaceRole.OPERATOR: "Operator",
    WorkspaceRole.APPROVER: "Approver",
    WorkspaceRole.AUTHOR: "Author",
}
VIEW_RUNS = "runs.view_run"


class UnknownWorkspace(LookupError):
    """No workspace has this slug (create it with `manage.py workspace_add`)."""


def workspace_get(slug: str) -> Workspace:
    """The workspace `slug`; `default` is made on first use."""
    if slug == DEFAULT_WORKSPACE:
        return Workspace.objects.get(pk=default_workspace_id())
    found = Workspace.objects.filter(slug=slug).first()
    if found is None:
        raise UnknownWorkspace(
            f"no workspace {slug!r} (create it with manage.py workspace_add {slug})"
        )
    return found


def _workspace_perms(user) -> dict[int, frozenset[str]]:
    """workspace id → the permissions `user` holds there by membership; cached on
    the user object, as Django caches its permissions (two queries, once)."""
    cached = getattr(user, "_workspace_perm_cache", None)
    if cached is not None:
        return cached
    roles = list(
        Membership.objects.filter(user_id=user.pk).values_list("workspace_id", "role")
    )
    by_group: dict[str, set[str]] = {}
    if roles:
        rows = Permission.objects.filter(
            group__name__in=ROLE_GROUPS.values()
        ).values_list("group__name", "content_type__app_label", "codename")
        for group, app_label, codename in rows:
            by_group.setdefault(group, set()).add(f"{app_label}.{codename}")
    held: dict[int, set[str]] = {}
    for workspace_id, role in roles:
        held.setdefault(workspace_id, set()).update(
            by_group.get(ROLE_GROUPS.get(role, ""), ())
        )
    cached = {ws: frozenset(perms) for ws, perms in held.items()}
    user._workspace_perm_cache = cached
    return cached


def workspaces_where(user, *perms) -> frozenset[int] | None:
    """Ids of the workspaces where `user` holds any of `perms`; None: every one
    (a superuser, or the permission held tenant-wide)."""
    if not (user and user.is_authenticated and user.is_active):
        return frozenset()
    if user.is_superuser or any(user.has_perm(p) for p in perms):
        return None
    return frozenset(
        ws for ws, held in _workspace_perms(user).items() if held.intersection(perms)
    )


def may(user, perm: str, workspace_id) -> bool:
    """Whether `user` holds `perm` in the workspace `workspace_id`."""
    where = workspaces_where(user, perm)
    return where is None or workspace_id in where


def may_somewhere(user, *perms) -> bool:
    """Whether `user` holds any of `perms` in at least one workspace (what an admin
    page or API endpoint needs before its queryset narrows it further)."""
    where = workspaces_where(user, *perms)
    return where is None or bool(where)


def scoped(queryset, user, *perms, path: str = "workspace"):
    """`queryset` narrowed to the rows of the workspaces where `user` holds any of
    `perms`; `path` leads from the rows to their workspace
    (`automation__workspace` for runs, `run__automation__workspace` for items)."""
    where = workspaces_where(user, *perms)
    if where is None:
        return queryset
    if path.endswith("automation__workspace"):
        # on the rows' own automation column (`automation_id IN (SELECT …)`), not
        # through a join on the automation: the planner keeps walking the runs'
        # (archived, -number) index in order (the admin scale bar), where the join
        # made SQLite sort 100k runs
        automations = Automation.objects.filter(workspace__in=sorted(where))
        prefix = path[: -len("workspace")]
        return queryset.filter(**{f"{prefix}in": automations.values("pk")})
    return queryset.filter(**{f"{path}__in": sorted(where)})


def automations_visible_to(user, *perms):
    """The automations of the workspaces where `user` holds any of `perms`
    (default: may view runs)."""
    return scoped(Automation.objects.all(), user, *(perms or (VIEW_RUNS,)))


def workspaces_visible_to(user, *perms):
    """The workspaces where `user` holds any of `perms` (default: may view runs),
    for filters and switchers."""
    return scoped(Workspace.objects.all(), user, *(perms or (VIEW_RUNS,)), path="pk")


def holds_role(user, role: str, workspace_id) -> bool:
    """Whether `user` holds `role` in the workspace: as a member there, or through
    the tenant-wide group of that role (approvals' `workspace:ROLE`)."""
    group = ROLE_GROUPS.get(role)
    if group is None or not (user and user.is_authenticated):
        return False
    if user.groups.filter(name=group).exists():
        return True
    return Membership.objects.filter(
        user_id=user.pk, workspace_id=workspace_id, role=role
    ).exists()
