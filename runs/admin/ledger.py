"""Engine and ledger tables: visible, exportable, never edited or deleted by hand."""

import datetime

from django.contrib import admin
from django.db.models import Q
from django.http import Http404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV

from automations.admin.scoping import WorkspaceScopedAdmin
from automations.workspaces import may_somewhere, scoped

from ..files import file_response
from ..models import ActionResult, AuditEvent, RunItem, StepRun, WorkItem
from ..resources import RunItemResource
from ..robots.console import robot_log_clean
from ..selectors import work_items_awaiting_decision
from ..services.approvals import decision_refusals
from ..states import WorkItemState
from .changelist import WindowPaginator
from .corrections import payload_edit_view
from .display import json_display, state_badge
from .run_actions import EXPORT_PERMISSION


class BigTableAdmin(WorkspaceScopedAdmin):
    """Read-only, and fast on millions of rows: no counts, no facets; rows of the
    workspaces the person may see only (through their run)."""

    workspace_path = "run__automation__workspace"

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50

    class Media:
        css = {"all": ["runs/admin.css"]}

    # JSON fields the change page shows as indented JSON (display.json_block, one
    # `<field>_json` display each) instead of the admin's one long line
    json_fields: tuple = ()

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_paginator(
        self, request, queryset, per_page, orphans=0, allow_empty_first_page=True
    ):
        return WindowPaginator(
            queryset, per_page, orphans, allow_empty_first_page, request=request
        )

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        shown = [f"{f}_json" if f in self.json_fields else f for f in fields]
        return list(dict.fromkeys(shown))

    def get_readonly_fields(self, request, obj=None):
        return [
            *super().get_readonly_fields(request, obj),
            *(f"{f}_json" for f in self.json_fields),
        ]

    @admin.display(description="Run", ordering="run__number")
    def run_link(self, obj):
        if obj.run_id is None:
            return "-"
        url = reverse("admin:runs_run_change", args=[obj.run_id])
        return format_html('<a href="{}">#{}</a>', url, obj.run.number)


@admin.register(StepRun)
class StepRunAdmin(BigTableAdmin):
    list_display = [
        "pk",
        "run_link",
        "step",
        "state",
        "worker",
        "items_processed",
        "exit_code",
        "started_at",
        "finished_at",
    ]
    list_filter = ["state"]
    list_select_related = ["run", "step"]
    exclude = ["log"]
    readonly_fields = ["robot_log"]

    @admin.display(description="Log")
    def robot_log(self, step_run):
        """The robot's console as stored, cleaned again for rows stored before
        robot_log_clean (escape codes, the server's temporary paths)."""
        if not step_run.log:
            return "-"
        return format_html(
            '<pre class="robot-log">{}</pre>', robot_log_clean(step_run.log)
        )


class AwaitingMyDecisionFilter(admin.SimpleListFilter):
    """`?awaiting=me`: the items awaiting input on which the viewer may decide
    (runs.selectors.work_items_awaiting_decision: four eyes and approvers)."""

    title = "awaiting decision"
    parameter_name = "awaiting"

    def lookups(self, request, model_admin):
        return [("me", "Awaiting my decision")]

    def queryset(self, request, queryset):
        if self.value() == "me":
            return work_items_awaiting_decision(request.user, queryset)
        return queryset


@admin.register(WorkItem)
class WorkItemAdmin(BigTableAdmin):
    list_display = [
        "pk",
        "run_link",
        "step",
        "item_state",
        "subject",
        "attempts",
        "failure_type",
        "failure_code",
        "failure_message",
    ]
    list_filter = [AwaitingMyDecisionFilter, "state", "failure_type"]
    list_select_related = ["run", "step"]
    search_fields = ["=subject"]
    readonly_fields = ["run_link", "files_list", "corrections"]
    json_fields = ("payload", "approvers", "approval")
    payload_json = json_display("payload", "Payload")
    approvers_json = json_display("approvers", "Approvers")
    approval_json = json_display("approval", "Approval")

    def get_ordering(self, request):
        # one run's items in order (index work_item_run_order); all runs' items
        # newest first (the primary key, read backwards)
        if "run__id__exact" in request.GET:
            return ["id"]
        return ["-id"]

    @admin.display(description="State", ordering="state")
    def item_state(self, item):
        return state_badge(item.state)

    @admin.display(description="Files")
    def files_list(self, item):
        files = list(item.files.order_by("name"))
        if not files:
            return "-"
        return format_html_join(
            mark_safe("<br>"),
            '<a href="{}" download>{}</a> ({} bytes, sha256 <code>{}</code>)',
            (
                (
                    reverse("admin:runs_workitem_file_download", args=[item.pk, f.pk]),
                    f.name,
                    f.size,
                    f.sha256 or "-",
                )
                for f in files
            ),
        )

    @admin.display(description="Decide / correct")
    def corrections(self, item):
        if item.state == WorkItemState.AWAITING_INPUT:
            url = reverse("admin:runs_run_decide", args=[item.run_id, item.pk])
            refusal = getattr(item, "refusal", "")
            if refusal:  # see get_object: not offered, and why
                return format_html(
                    '<a href="{}" class="runs-refusal-note">Not yours to decide: '
                    "{}</a>",
                    url,
                    refusal,
                )
            return format_html('<a class="button" href="{}">Decide</a>', url)
        if item.state == WorkItemState.FAILED:
            url = reverse("admin:runs_workitem_payload_edit", args=[item.pk])
            return format_html('<a class="button" href="{}">Edit payload</a>', url)
        return "-"

    def get_object(self, request, object_id, from_field=None):
        """The work item, with why the viewer may not decide on it (if it awaits
        input): the change page offers Decide only to who may."""
        item = super().get_object(request, object_id, from_field)
        if item is not None and item.state == WorkItemState.AWAITING_INPUT:
            item.refusal = decision_refusals(item.run, [item], request.user).get(
                item.pk, ""
            )
        return item

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:item_id>/files/<int:file_id>/download/",
                view(self.file_download_view),
                name="runs_workitem_file_download",
            ),
            path(
                "<int:item_id>/payload/",
                view(lambda r, item_id: payload_edit_view(self, r, item_id)),
                name="runs_workitem_payload_edit",
            ),
            *super().get_urls(),
        ]

    def file_download_view(self, request, item_id, file_id):
        """A work item's file, as a download, for whoever may view the work item
        (its run); anyone else gets a 404, as for a file that does not exist."""
        if not self.has_view_permission(request):
            raise Http404("no such file")
        item = self.get_queryset(request).filter(pk=item_id).first()
        found = item and item.files.filter(pk=file_id).first()
        if found is None:
            raise Http404("no such file")
        return file_response(found)


@admin.register(RunItem)
class RunItemAdmin(ExportMixin, BigTableAdmin):
    list_display = [
        "pk",
        "run_link",
        "seq",
        "step",
        "action",
        "subject",
        "attempt",
        "outcome",
        "result",
        "failure_cause",
        "finished_at",
    ]
    list_filter = ["outcome"]
    list_select_related = ["run", "step"]
    search_fields = ["=subject", "=idempotency_key"]  # see get_search_results
    resource_classes = [RunItemResource]
    formats = [CSV]
    json_fields = ("parameters",)
    parameters_json = json_display("parameters", "Parameters")

    def has_export_permission(self, request):
        return may_somewhere(request.user, EXPORT_PERMISSION)

    def get_export_filename(self, request, queryset, file_format):
        # what it is and when, in UTC (import-export's is "RunItem-2026-12-01")
        stamp = timezone.now().astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"run-items-{stamp}.{file_format.get_extension()}"

    def get_export_queryset(self, request):
        # the run items of the runs the person may export only
        return scoped(
            super().get_export_queryset(request),
            request.user,
            EXPORT_PERMISSION,
            path=self.workspace_path,
        )

    def get_search_results(self, request, queryset, search_term):
        """Exact matches only, each on an index, though run items index neither
        column (two entries fewer per run item written): the subject is the
        work item's (a run item records an attempt of its work item, subject
        included), so by subject the run items of the work items of that
        subject (work_item_subject); a key, `run:work item:action` (every run
        item's is made so: `ledger.idempotency_key`), among the run items of
        that work item. A term of no such shape is no run item's key."""
        term = search_term.strip()
        if not term:
            return queryset, False
        items, matches = Q(subject=term), Q(subject=term)
        _run, _, rest = term.partition(":")
        work_item, _, action = rest.partition(":")
        if work_item.isdigit() and action:
            items |= Q(pk=int(work_item))
            matches |= Q(idempotency_key=term)
        # one semi-join into the run items' work_item index (an OR of two
        # such lookups, one a subquery, the planner could only filter a scan by)
        return queryset.filter(
            matches, work_item__in=WorkItem.objects.filter(items).values("pk")
        ), False

    @admin.display(description="Result", ordering="result_ref")
    def result(self, item):
        """The result reference, as a link where its step has a `result_url`."""
        link = item.result_link
        if not link:
            return item.result_ref
        return format_html(
            '<a href="{}" rel="noopener noreferrer" target="_blank">{}</a>',
            link,
            item.result_ref,
        )


@admin.register(AuditEvent)
class AuditEventAdmin(BigTableAdmin):
    list_display = [
        "created_at",
        "run_link",
        "seq",
        "actor_label",
        "verb",
        "object_type",
        "object_id",
        "reason",
    ]
    list_filter = ["verb"]
    list_select_related = ["run"]
    json_fields = ("before", "after")
    before_json = json_display("before", "Before")
    after_json = json_display("after", "After")


@admin.register(ActionResult)
class ActionResultAdmin(BigTableAdmin):
    list_display = ["idempotency_key", "result_ref", "created_at"]
