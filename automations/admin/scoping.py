"""Workspace scoping for every ModelAdmin that shows rows of a workspace.

`WorkspaceScopedAdmin` stands where `admin.ModelAdmin` stood (a subclass's own
`has_*_permission` still wins): it narrows the queryset to the workspaces where the
person holds the model's view or change permission (`automations.workspaces`),
answers the permission checks per workspace (without an object: "somewhere"; with
one: in its workspace), limits the automation and workspace choices of forms and
list filters to what the person may see, adds a workspace column and filter, and
answers an object of another workspace with a 404, as an unknown id.
"""

from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist
from django.http import Http404

from ..models import Automation, Workspace
from ..workspaces import may, may_somewhere, scoped


def workspace_id_of(obj, path: str):
    """Walk `path` (`automation__workspace`) from `obj` to its workspace's id."""
    *hops, last = path.split("__")
    for hop in hops:
        obj = getattr(obj, hop, None)
        if obj is None:
            return None
    return getattr(obj, f"{last}_id", None)


def perm_name(opts, action: str) -> str:
    return f"{opts.app_label}.{get_permission_codename(action, opts)}"


class ScopedRelatedFilter(admin.RelatedFieldListFilter):
    """A list filter on an automation or a workspace that offers only those the
    person may see (Django's would list every automation of every workspace)."""

    def field_choices(self, field, request, model_admin):
        related = field.related_model
        perms = (
            perm_name(model_admin.opts, "view"),
            perm_name(model_admin.opts, "change"),
        )
        rows = related._default_manager.all()
        if related is Automation:
            rows = scoped(rows, request.user, *perms, path="workspace")
        elif related is Workspace:
            rows = scoped(rows, request.user, *perms, path="pk")
        return [(obj.pk, str(obj)) for obj in rows]


class WorkspaceScopedAdmin(admin.ModelAdmin):
    # from a row to its workspace: "workspace", "automation__workspace", …
    workspace_path = "automation__workspace"
    # None: this model's own view/change permissions decide what is visible
    visible_with: tuple | None = None

    def _perm(self, action: str) -> str:
        return perm_name(self.opts, action)

    def _visible_perms(self) -> tuple:
        return self.visible_with or (self._perm("view"), self._perm("change"))

    def workspace_of(self, obj):
        return workspace_id_of(obj, self.workspace_path)

    def _has(self, request, action: str, obj=None) -> bool:
        if obj is None:
            return may_somewhere(request.user, self._perm(action))
        return may(request.user, self._perm(action), self.workspace_of(obj))

    # -- what is visible -----------------------------------------------------

    def get_queryset(self, request):
        return scoped(
            super().get_queryset(request),
            request.user,
            *self._visible_perms(),
            path=self.workspace_path,
        )

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # an object of another workspace answers as one that does not exist, and
        # that answer is a 404 (Django's redirect would be a 302 to the index)
        raise Http404(f"no {opts.verbose_name} with id {str(object_id)[:40]!r}")

    # -- permissions: somewhere without an object, in its workspace with one --

    def has_module_permission(self, request):
        return any(
            may_somewhere(request.user, self._perm(a))
            for a in ("view", "change", "add", "delete")
        )

    def has_view_permission(self, request, obj=None):
        return self._has(request, "view", obj) or self._has(request, "change", obj)

    def has_change_permission(self, request, obj=None):
        return self._has(request, "change", obj)

    def has_add_permission(self, request, *args):
        return may_somewhere(request.user, self._perm("add"))

    def has_delete_permission(self, request, obj=None):
        return self._has(request, "delete", obj)

    # -- choices: only automations and workspaces the person may write in ----

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        perms = (self._perm("add"), self._perm("change"))
        if db_field.related_model is Automation:
            kwargs["queryset"] = scoped(
                Automation.objects.all(), request.user, *perms, path="workspace"
            )
        elif db_field.related_model is Workspace:
            kwargs["queryset"] = scoped(
                Workspace.objects.all(), request.user, *perms, path="pk"
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.related_model is Automation:
            kwargs["queryset"] = scoped(
                Automation.objects.all(),
                request.user,
                self._perm("add"),
                self._perm("change"),
                path="workspace",
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    # -- a workspace column and filter; related filters scoped --------------

    def get_list_display(self, request):
        return [*super().get_list_display(request), "workspace_column"]

    def get_list_select_related(self, request):
        selected = super().get_list_select_related(request)
        if selected is True:
            return True
        return [*(selected or ()), self.workspace_path]

    def get_list_filter(self, request):
        filters = []
        for entry in super().get_list_filter(request):
            if isinstance(entry, str):
                try:
                    field = self.opts.get_field(entry)
                except FieldDoesNotExist:
                    field = None
                related = getattr(field, "related_model", None)
                if related in (Automation, Workspace):
                    entry = (entry, ScopedRelatedFilter)
            filters.append(entry)
        return [(self.workspace_path, ScopedRelatedFilter), *filters]

    @admin.display(description="Workspace")
    def workspace_column(self, obj):
        *hops, last = self.workspace_path.split("__")
        for hop in hops:
            obj = getattr(obj, hop, None)
            if obj is None:
                return "-"
        workspace = getattr(obj, last, None)
        return workspace.slug if workspace is not None else "-"


class WorkspaceScopedInline:
    """For inlines: the permissions of the parent's workspace (`parent_path`
    leads from the parent object to its workspace)."""

    parent_path = "workspace"

    def _has(self, request, action, obj):
        perm = perm_name(self.opts, action)
        if obj is None:
            return may_somewhere(request.user, perm)
        return may(request.user, perm, workspace_id_of(obj, self.parent_path))

    def has_view_permission(self, request, obj=None):
        return self._has(request, "view", obj) or self._has(request, "change", obj)

    def has_change_permission(self, request, obj=None):
        return self._has(request, "change", obj)

    def has_add_permission(self, request, obj=None):
        return self._has(request, "add", obj)

    def has_delete_permission(self, request, obj=None):
        return self._has(request, "delete", obj)
