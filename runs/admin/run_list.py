"""The runs list: its columns (each from the row's own fields and the annotations
of `get_queryset`, no query per row), exact search, the hint for archived
matches, the poll that keeps its rows live, and the list's audit trail doors. A
mixin of `RunAdmin`, which holds the list's options (list_display, filters)."""

import copy

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import (
    Case,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from automations.models import Step

from ..models import WorkItem
from ..states import WORK_ITEM_OPEN, WorkItemState
from . import audit_export
from .changelist import (
    LIVE_STATES,
    ArchivedFilter,
    WindowPaginator,
    any_active,
    live_rows_view,
)
from .display import (
    duration,
    progress_breakdown,
    run_person,
    run_trigger,
    state_badge,
)
from .polling import polled
from .run_actions import ACTIONS

# "N archived runs match": counted up to this, then "more than N"
MAX_HINT = 1000
# seconds between two refreshes of the runs list's rows while a run is active
LIVE_SECONDS = 3
FINISHED_ITEMS = [WorkItemState.DONE, WorkItemState.RESOLVED, WorkItemState.FAILED]


def _item_count(*states):
    items = WorkItem.objects.filter(run=OuterRef("pk"))
    if states:
        items = items.filter(state__in=states)
    counted = items.order_by().values("run").annotate(n=Count("id")).values("n")[:1]
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _open_step():
    """The name of the first step (in order) of the run's version that has open
    work items: where the run is. One index probe (work_item_claim) per step."""
    open_here = WorkItem.objects.filter(
        run=OuterRef(OuterRef("pk")), step=OuterRef("pk"), state__in=WORK_ITEM_OPEN
    )
    return (
        Step.objects.filter(version=OuterRef("version"))
        .filter(Exists(open_here))
        .order_by("order")
        .values("name")[:1]
    )


class RunListMixin:
    """The runs changelist of `RunAdmin`."""

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                items_all=_item_count(),
                items_finished=_item_count(*FINISHED_ITEMS),
                items_failed=_item_count(WorkItemState.FAILED),
                items_resolved=_item_count(WorkItemState.RESOLVED),
                open_step=Case(
                    When(state__in=LIVE_STATES, then=Subquery(_open_step())),
                    default=Value(""),
                ),
            )
        )

    def get_paginator(
        self, request, queryset, per_page, orphans=0, allow_empty_first_page=True
    ):
        return WindowPaginator(
            queryset, per_page, orphans, allow_empty_first_page, request=request
        )

    def get_search_results(self, request, queryset, search_term):
        """Exact matches only, each on an index: number, id, work item subject."""
        term = search_term.strip()
        if not term:
            return queryset, False
        query = Q(pk__in=WorkItem.objects.filter(subject=term).values("run_id"))
        if term.lstrip("#").isdigit():
            query |= Q(number=int(term.lstrip("#")))
        try:
            import uuid

            query |= Q(pk=uuid.UUID(term))
        except ValueError:
            pass
        return queryset.filter(query), False

    def changelist_view(self, request, extra_context=None):
        # A forced POST of an action this user may not use is refused outright
        # (Django would only say "no action selected").
        name = request.POST.get("action") if request.method == "POST" else None
        if name and name not in self.get_actions(request):
            known = {f"{a.name}_runs" for a in ACTIONS.values()}
            known |= {"export_csv", "export_audit"}
            if name in known:
                raise PermissionDenied
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        cl = context and context.get("cl")
        if cl is not None and hasattr(cl, "result_list"):
            context["archived_hint"] = self.archived_matches(request, cl)
            context["live_url"] = self.live_url(request, cl)
            context["live_seconds"] = LIVE_SECONDS
            context["may_export"] = self.has_export_permission(request)
        return response

    def live_url(self, request, cl):
        """The poll URL of the list's rows (same query string), while a run shown
        is pending or active; None stops the list from polling at all."""
        if not any_active(cl.result_list):
            return None
        query = request.GET.urlencode()
        return reverse("admin:runs_run_list_live") + (f"?{query}" if query else "")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "live/",
                polled(self.admin_site, lambda r: live_rows_view(self, r)),
                name="runs_run_list_live",
            ),
            path(
                "audit.csv",
                view(lambda r: audit_export.list_audit_view(self, r)),
                name="runs_run_audit_list",
            ),
            path(
                "audit/",
                view(lambda r: audit_export.range_audit_view(self, r)),
                name="runs_run_audit_range",
            ),
            path(
                "<path:pk>/audit.csv",
                view(lambda r, pk: audit_export.run_audit_view(self, r, pk)),
                name="runs_run_audit",
            ),
            *super().get_urls(),
        ]

    def archived_matches(self, request, cl):
        """A search of the default list (archived runs hidden) that found nothing:
        how many archived runs the same search and filters find, among the runs
        the person may see, with the link that shows them (counted to MAX_HINT)."""
        if not cl.query or ArchivedFilter.parameter_name in request.GET:
            return None
        if cl.result_list:
            return None
        archived = request.GET.copy()
        archived[ArchivedFilter.parameter_name] = "yes"
        shadow = copy.copy(request)
        shadow.GET = archived
        found = self.get_changelist_instance(shadow).queryset
        count = found.order_by().values("pk")[: MAX_HINT + 1].count()
        if not count:
            return None
        return {
            "count": count,
            "more": count > MAX_HINT,
            "url": cl.get_query_string({ArchivedFilter.parameter_name: "yes"}),
        }

    @admin.display(description="Run", ordering="number")
    def number_link(self, run):
        url = reverse("admin:runs_run_change", args=[run.pk])
        marks = " (test case)" if run.is_test_case else ""
        marks += " (archived)" if run.archived else ""
        return format_html('<a href="{}">#{}</a>{}', url, run.number, marks)

    # one cell: the list has 14 columns to fit at 1440 px
    @admin.display(description="Automation", ordering="automation__name")
    def automation_version(self, run):
        return format_html(
            '{} <span class="runs-version">v{}</span>',
            run.automation,
            run.version.number,
        )

    @admin.display(description="State", ordering="state")
    def state_badge(self, run):
        return state_badge(run.state)

    # Not named `trigger`: a list_display name that is also a model field (the
    # Trigger foreign key) shows the field, which is empty ("-") for most runs.
    @admin.display(description="Trigger", ordering="trigger_kind")
    def trigger_label(self, run):
        return run_trigger(run)

    # not `run_by`, the model field (the user), for the reason above
    @admin.display(description="Run by", ordering="run_by_label")
    def started_by(self, run):
        return run_person(run) or run.run_by_label or "-"

    @admin.display(description="Current step")
    def current(self, run):
        """The first step with open items, while the engine works on the run."""
        if run.state not in LIVE_STATES:
            return "-"
        return getattr(run, "open_step", None) or run.current_step or "-"

    @admin.display(description="Failed", ordering="failed_items")
    def failed(self, run):
        # the run's counter (kept by the engine, retry and resolve): sortable
        if not run.failed_items:
            return "0"
        return format_html(
            '<span class="runs-failed-count">{}</span>', run.failed_items
        )

    @admin.display(description="Lead time")
    def lead_time(self, run):
        lead = run.lead_time
        if lead is None and run.started_at:
            lead = timezone.now() - run.created_at
            return format_html("<i>{}</i>", duration(lead))
        return duration(lead) if lead is not None else "-"

    @admin.display(description="Progress")
    def progress(self, run):
        failed = getattr(run, "items_failed", 0)
        resolved = getattr(run, "items_resolved", 0)
        return progress_breakdown(
            getattr(run, "items_finished", 0) - failed - resolved,
            failed,
            getattr(run, "items_all", 0),
            resolved,
        )
