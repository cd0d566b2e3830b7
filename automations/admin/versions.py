"""Automation versions: their steps inline, publish, diff.

A published version (published, frozen or retired) is read-only: no Save, no
Delete, and a POST to its change page is refused (403)."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from ..diffs import version_diff_rows
from ..models import AutomationVersion, Step
from ..services import AutomationStateError, publish_refusal, version_publish
from ..workspaces import may, may_somewhere, scoped
from .scoping import WorkspaceScopedAdmin, WorkspaceScopedInline

PUBLISH_PERMISSION = "automations.change_automationversion"


class StepInline(WorkspaceScopedInline, admin.TabularInline):
    parent_path = "automation__workspace"

    model = Step
    extra = 0
    fields = [
        "order",
        "name",
        "action",
        "parameters",
        "batch_size",
        "concurrency",
        "max_attempts",
        "retry_backoff_seconds",
        "item_timeout_seconds",
        "max_in_flight",
        "condition",
        "requires_approval",
        "result_url",
    ]

    def has_change_permission(self, request, obj=None):
        return (obj is None or not obj.is_published) and super().has_change_permission(
            request, obj
        )

    def has_add_permission(self, request, obj=None):
        return (obj is None or not obj.is_published) and super().has_add_permission(
            request, obj
        )

    def has_delete_permission(self, request, obj=None):
        return (obj is None or not obj.is_published) and super().has_delete_permission(
            request, obj
        )


def with_current_number(queryset):
    """Versions annotated with their automation's latest published number: what
    `version_status` needs, in the same query."""
    return queryset.annotate(
        current_number=Subquery(
            AutomationVersion.objects.filter(
                automation=OuterRef("automation"), published_at__isnull=False
            )
            .order_by("-number")
            .values("number")[:1]
        )
    )


def version_status(version) -> str:
    """The version's status as a badge (draft, published, frozen, retired); the
    version comes annotated by `with_current_number` or is looked up."""
    if hasattr(version, "current_number"):
        status = version.status_in(
            current_number=version.current_number,
            automation_status=version.automation.status,
        )
    else:
        status = version.status
    return format_html(
        '<span class="version-status version-status-{}">{}</span>', status, status
    )


def version_author(version) -> str:
    return version.created_by.get_username() if version.created_by_id else "-"


@admin.register(AutomationVersion)
class AutomationVersionAdmin(WorkspaceScopedAdmin):
    list_display = [
        "__str__",
        "automation",
        "number",
        "status",
        "author",
        "published_at",
        "created_at",
    ]
    list_filter = ["automation"]
    list_select_related = ["automation", "created_by"]
    readonly_fields = [
        "status",
        "author",
        "definition_hash",
        "published_at",
        "created_at",
    ]
    exclude = ["created_by"]
    inlines = [StepInline]
    actions = ["publish_versions"]
    change_form_template = "admin/automations/automationversion/change_form.html"

    def get_queryset(self, request):
        return with_current_number(super().get_queryset(request))

    @admin.display(description="Status")
    def status(self, version):
        return version_status(version)

    @admin.display(description="Author", ordering="created_by__username")
    def author(self, version):
        return version_author(version)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_published:
            return [
                "automation",
                "number",
                "run_timeout_seconds",
                *self.readonly_fields,
            ]
        return self.readonly_fields

    # a published version is frozen: read-only for everyone (its steps too,
    # StepInline), and Django answers a POST to its change page with a 403
    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_published:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_published:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def has_publish_permission(self, request, version=None):
        if version is not None:
            return may(
                request.user, PUBLISH_PERMISSION, version.automation.workspace_id
            )
        return may_somewhere(request.user, PUBLISH_PERMISSION)

    @admin.action(description="Publish selected versions", permissions=["publish"])
    def publish_versions(self, request, queryset):
        done, refused = [], []
        allowed = scoped(
            queryset, request.user, PUBLISH_PERMISSION, path=self.workspace_path
        )
        for version in allowed.select_related("automation"):
            try:
                version_publish(version, actor=request.user)
                done.append(str(version))
            except AutomationStateError as exc:
                refused.append(str(exc))
        if done:
            self.message_user(request, "Published " + ", ".join(done), messages.SUCCESS)
        if refused:
            self.message_user(
                request,
                "Not published (nothing changed): " + "; ".join(refused),
                messages.WARNING,
            )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/publish/",
                view(self.publish_view),
                name="automations_automationversion_publish",
            ),
            path(
                "<path:object_id>/diff/",
                view(self.diff_view),
                name="automations_automationversion_diff",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, unquote(object_id))
        may_publish = (
            version is not None
            and self.has_publish_permission(request, version)
            and not version.is_published
        )
        refusal = publish_refusal(version, request.user) if may_publish else ""
        extra_context = {
            **(extra_context or {}),
            "may_publish": may_publish and not refusal,
            "publish_refusal": refusal,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def publish_view(self, request, object_id):
        version = get_object_or_404(
            self.get_queryset(request).select_related("automation"),
            pk=unquote(object_id),
        )
        if not self.has_publish_permission(request, version):
            raise PermissionDenied
        if request.method == "POST":
            try:
                version_publish(version, actor=request.user)
            except AutomationStateError as exc:
                self.message_user(request, f"Not published: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Published {version}.", messages.SUCCESS)
            return HttpResponseRedirect(
                reverse(
                    "admin:automations_automation_change", args=[version.automation_id]
                )
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": version,
            "title": f"Publish {version}?",
            "steps": version.steps.order_by("order"),
            # four eyes: said before the form, not after it is sent
            "refusal": publish_refusal(version, request.user),
        }
        return TemplateResponse(
            request, "admin/automations/automationversion/publish.html", context
        )

    def diff_view(self, request, object_id):
        version = get_object_or_404(
            self.get_queryset(request).select_related("automation"),
            pk=unquote(object_id),
        )
        if not self.has_view_or_change_permission(request, version):
            raise PermissionDenied
        versions = list(version.automation.versions.order_by("number"))
        against_number = request.GET.get("against")
        against = next(
            (v for v in versions if str(v.number) == against_number),
            next((v for v in reversed(versions) if v.number < version.number), None),
        )

        rows = version_diff_rows(against, version)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": version,
            "against": against,
            "versions": versions,
            "rows": rows,
            "title": f"{version.automation.slug}: v{against.number if against else '-'}"
            f" → v{version.number}",
        }
        return TemplateResponse(
            request, "admin/automations/automationversion/diff.html", context
        )
