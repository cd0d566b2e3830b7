"""Who may do what over the API, in one place every API view uses.

Roles: Django model permissions, as in the admin groups. Viewer reads
(`runs.view_run`); Operator controls (the custom permissions on
`Run.Meta.permissions`); triggering needs `runs.trigger_run`.

Workspaces (DESIGN "Workspace"): a permission counts where it is held
(`automations.workspaces`): the endpoint needs it somewhere, the run or automation
it addresses needs it in its workspace, and `runs_visible_to` starts from the runs
of the workspaces where the caller may view runs, so a run of another workspace is
a 404 (never a 403 that confirms it) and absent from lists, exports and reports.

Grants (DESIGN "Trust"): a request authenticated by an API token acts with its user's
roles narrowed to the automations its user's ApiClient lists, on *every* endpoint:
`runs_visible_to(request)` is the only queryset of runs an API view starts from, so a
run of another automation is a 404 on details and controls and absent from lists,
exports and reports. A token whose user has no ApiClient sees and starts nothing
(fail closed). Superusers and session users (people in admin) are not narrowed.
"""

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from automations.models import Automation, TriggerKind
from automations.workspaces import VIEW_RUNS, may, may_somewhere

from ..models import Run, WorkItem
from ..selectors import runs_for, work_items_for
from .authentication import TOKEN_AUTHENTICATORS

# control endpoint → the permission it needs
CONTROL_PERMISSIONS = {
    "stop": "runs.stop_run",
    "retry": "runs.retry_run",
    "resolve": "runs.resolve_run",
    "archive": "runs.archive_run",
    "unarchive": "runs.archive_run",
    "rerun": "runs.rerun_run",
    "input": "runs.approve_run",
}


class HasRunPermission(BasePermission):
    """Reads need `runs.view_run` (unless the view says `requires_view = False`); a
    view's `required_permission`, or the control action's, is checked on top."""

    message = "you do not have permission to do this"

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        needed = self._needed(view)
        if len(needed) > 1 or (needed and needed[0] != VIEW_RUNS):
            self.message = f"you need the {needed[-1]} permission"
        return all(may_somewhere(user, perm) for perm in needed)

    def has_object_permission(self, request, view, obj):
        """On one run: the permissions in the run's workspace (it is visible, so
        a refusal here is a 403 that confirms nothing new)."""
        if not isinstance(obj, Run):
            return True
        workspace_id = obj.automation.workspace_id
        needed = self._needed(view)
        if needed:
            self.message = f"you need the {needed[-1]} permission in this workspace"
        return all(may(request.user, perm, workspace_id) for perm in needed)

    def _needed(self, view) -> list[str]:
        needed = [VIEW_RUNS] if getattr(view, "requires_view", True) else []
        extra = CONTROL_PERMISSIONS.get(getattr(view, "action", None)) or getattr(
            view, "required_permission", None
        )
        return [*needed, extra] if extra else needed


def by_token(request) -> bool:
    return isinstance(
        getattr(request, "successful_authenticator", None), TOKEN_AUTHENTICATORS
    )


def is_narrowed(request) -> bool:
    """True when the request's grants limit it to its ApiClient's automations."""
    return by_token(request) and not request.user.is_superuser


def automations_granted(request):
    """The automations a narrowed request may reach (a queryset), or None: any."""
    if not is_narrowed(request):
        return None
    return Automation.objects.filter(api_clients__user=request.user)


def runs_visible_to(request, runs=None):
    """`runs` (default: every run) narrowed to what this API request may see and
    act on. Every API view that shows or changes a run starts from this."""
    return _visible(
        request, Run.objects.all() if runs is None else runs, runs_for, "automation"
    )


def work_items_visible_to(request, items=None):
    """`items` (default: every work item) narrowed as `runs_visible_to` narrows
    their runs, on the items' own path (`run__in=<visible runs>` made PostgreSQL and
    SQLite walk every visible run to list a handful of items)."""
    return _visible(
        request,
        WorkItem.objects.all() if items is None else items,
        work_items_for,
        "run__automation",
    )


def _visible(request, queryset, narrow, automation_path: str):
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return queryset.none()
    queryset = narrow(user, queryset)
    granted = automations_granted(request)
    if granted is None:
        return queryset
    return queryset.filter(**{f"{automation_path}__in": granted.values("pk")})


def may_trigger(request, automation) -> bool:
    """The per-automation grant for API tokens (see module docstring)."""
    granted = automations_granted(request)
    return granted is None or granted.filter(pk=automation.pk).exists()


def api_trigger_check(automation):
    """The enabled `api` trigger a run over the API is recorded with. DESIGN: "an
    automation starts over the API only if it has an enabled api trigger"."""
    trigger = (
        automation.triggers.filter(kind=TriggerKind.API, enabled=True)
        .order_by("pk")
        .first()
    )
    if trigger is None:
        raise no_api_trigger(automation)
    return trigger


def no_api_trigger(automation) -> exceptions.PermissionDenied:
    return exceptions.PermissionDenied(
        f"automation {automation.slug} has no enabled api trigger",
        code="no_api_trigger",
    )
