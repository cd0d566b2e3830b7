"""Who may do what: Django model permissions, as in the admin groups.

Viewer reads (`runs.view_run`); Operator controls (the custom permissions on
`Run.Meta.permissions`). Triggering needs `runs.trigger_run`, and a request
authenticated by an API token may trigger only the automations its user's ApiClient
lists (superusers any).
"""

from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import BasePermission

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
        needed = ["runs.view_run"] if getattr(view, "requires_view", True) else []
        extra = getattr(view, "required_permission", None)
        action = getattr(view, "action", None)
        if action in CONTROL_PERMISSIONS:
            extra = CONTROL_PERMISSIONS[action]
        if extra:
            needed.append(extra)
            self.message = f"you need the {extra} permission"
        return user.has_perms(needed)


def by_token(request) -> bool:
    return isinstance(request.successful_authenticator, TokenAuthentication)


def may_trigger(request, automation) -> bool:
    """The per-automation grant for API tokens (see module docstring)."""
    user = request.user
    if user.is_superuser or not by_token(request):
        return True
    return automation.api_clients.filter(user=user).exists()
