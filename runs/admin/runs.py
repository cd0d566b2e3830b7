"""The runs changelist and the operator actions (bulk and per run); the run page
itself is `run_page.RunPageMixin`."""

import copy

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.http import (
    HttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV

from automations.admin.scoping import WorkspaceScopedAdmin
from automations.models import Step
from automations.workspaces import may, may_somewhere, scoped

from ..exports import audit_filename, audit_response
from ..models import Run, RunItem, WorkItem
from ..resources import RunItemResource, RunResource
from ..selectors import work_items_awaiting_decision
from ..services import RunsError
from ..services.approvals import DecisionRefused
from ..states import WORK_ITEM_OPEN, IllegalTransition, WorkItemState
from . import audit_export, forms
from .changelist import (
    LIVE_STATES,
    ArchivedFilter,
    KindFilter,
    TestSuiteRunsFilter,
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
from .run_actions import ACTIONS, EXPORT_PERMISSION
from .run_page import RunPageMixin

MAX_BULK = 1000
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


def _bulk(action):
    def bulk(modeladmin, request, queryset):
        return modeladmin.bulk_action(request, queryset, action)

    bulk.__name__ = f"{action.name}_runs"
    return admin.action(
        description=f"{action.label} (selected runs)", permissions=[action.name]
    )(bulk)


@admin.register(Run)
class RunAdmin(RunPageMixin, ExportMixin, WorkspaceScopedAdmin):
    list_display = [
        "number_link",
        "automation_version",
        "state_badge",
        "current",
        "trigger_label",
        "started_by",
        "created_at",
        "completed_at",  # sortable (GRC: "sort by completion time")
        "lead_time",
        "progress",
        "failed",
    ]
    list_display_links = None
    list_filter = [
        "automation",
        "state",
        "trigger_kind",
        ArchivedFilter,
        KindFilter,
        TestSuiteRunsFilter,
    ]
    list_select_related = ["automation", "version"]
    search_fields = ["=number"]
    search_help_text = "Run number, run id, or the exact subject of a work item."
    date_hierarchy = "created_at"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    paginator = WindowPaginator
    actions = [_bulk(a) for a in ACTIONS.values()] + ["export_audit", "export_csv"]
    change_list_template = "admin/runs/run/change_list.html"
    # import-export's template shows the object tools only to who may add runs
    # (nobody): ours shows them, its Export link among them
    import_export_change_list_template = change_list_template
    resource_classes = [RunResource]
    formats = [CSV]

    class Media:
        css = {"all": ["runs/admin.css"]}

    # -- permissions ---------------------------------------------------------

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_export_permission(self, request, run=None):
        if run is not None:
            return may(request.user, EXPORT_PERMISSION, run.automation.workspace_id)
        return may_somewhere(request.user, EXPORT_PERMISSION)

    def may(self, request, action, run=None) -> bool:
        """The action's permission: in `run`'s workspace, or (no run) somewhere;
        bulk actions narrow their runs with `runs_may`."""
        if run is not None:
            return may(request.user, action.permission, run.automation.workspace_id)
        return may_somewhere(request.user, action.permission)

    def get_export_queryset(self, request):
        # import-export's export page: the runs the person may export only
        return self.runs_may(
            request, super().get_export_queryset(request), EXPORT_PERMISSION
        )

    def runs_may(self, request, queryset, permission):
        """The runs of `queryset` in the workspaces where the person holds
        `permission` (the queryset is already narrowed to what they may see)."""
        return scoped(queryset, request.user, permission, path=self.workspace_path)

    def allowed_actions(self, request, run=None):
        actions = [
            a
            for a in ACTIONS.values()
            if self.may(request, a, run) and (run is None or a.offered(run))
        ]
        if run is not None and any(a.name == "decide" for a in actions):
            # Approve / reject shows only to who may decide on one of its items
            # (four eyes, approvers): the same rule as the service's
            waiting = WorkItem.objects.filter(run=run)
            if not work_items_awaiting_decision(request.user, waiting).exists():
                actions = [a for a in actions if a.name != "decide"]
        return actions

    # -- changelist ----------------------------------------------------------

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                items_all=_item_count(),
                items_finished=_item_count(*FINISHED_ITEMS),
                items_failed=_item_count(WorkItemState.FAILED),
                items_resolved=_item_count(WorkItemState.RESOLVED),
                # the Trigger and Run by cells: joined here, not a query per row
                rerun_of_number=F("rerun_of__number"),
                parent_number=F("parent__number"),
                run_by_name=F(f"run_by__{get_user_model().USERNAME_FIELD}"),
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
        return reverse("admin:runs_run_live") + (f"?{query}" if query else "")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "live/",
                view(lambda r: live_rows_view(self, r)),
                name="runs_run_live",
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

    @admin.display(description="Version", ordering="version__number")
    def version_number(self, run):
        return f"v{run.version.number}"

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
        failed = getattr(run, "items_failed", run.failed_items)
        if not failed:
            return "0"
        return format_html('<span class="runs-failed-count">{}</span>', failed)

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

    # -- actions -------------------------------------------------------------

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_export_permission(request):
            actions.pop("export_csv", None)
            actions.pop("export_audit", None)
        return actions

    def bulk_action(self, request, queryset, action):
        if not self.may(request, action):
            raise PermissionDenied
        allowed = self.runs_may(request, queryset, action.permission)
        runs = list(allowed.select_related("automation", "version")[: MAX_BULK + 1])
        if not runs:
            self.message_user(
                request,
                f"{action.label}: you may not do this in the workspace of any "
                "selected run; nothing changed.",
                messages.ERROR,
            )
            return None
        if len(runs) > MAX_BULK:
            self.message_user(
                request,
                f"Select at most {MAX_BULK} runs for one action.",
                messages.ERROR,
            )
            return None
        form = action.form_class(request.POST if request.POST.get("confirm") else None)
        if form.is_bound and form.is_valid():
            self.apply_each(request, runs, action, form)
            return None
        return self.confirmation(request, runs, action, form, bulk=True)

    @admin.action(description="Export audit trail (selected runs)")
    def export_audit(self, request, queryset):
        """The audit CSV of the selected runs, straight away (no choice to make):
        those of the workspaces where the person may export."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        runs = self.runs_may(request, queryset, EXPORT_PERMISSION)
        numbers = list(runs.order_by("number").values_list("number", flat=True)[:2])
        if not numbers:
            self.message_user(
                request,
                "You may not export any of the selected runs; nothing exported.",
                messages.ERROR,
            )
            return None
        one = numbers[0] if len(numbers) == 1 else None
        return audit_response(runs, audit_filename(run_number=one))

    @admin.action(description="Export CSV (selected runs)")
    def export_csv(self, request, queryset):
        if not self.has_export_permission(request):
            raise PermissionDenied
        form = forms.ExportForm(request.POST if request.POST.get("confirm") else None)
        runs = self.runs_may(request, queryset, EXPORT_PERMISSION).order_by("number")
        if form.is_bound and form.is_valid():
            return self.export_response(form.cleaned_data["what"], runs)
        return self.confirmation(
            request,
            list(runs[: MAX_BULK + 1]),
            None,
            form,
            bulk=True,
            name="export_csv",
            title="Export CSV",
            explain="Downloads a CSV file of the selected runs, or of every run item "
            "(one action on one subject) of the selected runs. Cells that a "
            "spreadsheet would run as a formula are prefixed with '.",
        )

    def export_response(self, what, runs):
        if what == "audit":
            return audit_response(runs, audit_filename())
        if what == "run_items":
            rows = RunItem.objects.filter(run__in=runs.values("pk")).order_by(
                "run", "seq"
            )
            resource, name = RunItemResource(), "run-items"
        else:
            rows, resource, name = runs, RunResource(), "runs"
        dataset = resource.export(queryset=rows)
        response = HttpResponse(CSV().export_data(dataset), content_type="text/csv")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
        return response

    def apply_each(self, request, runs, action, form):
        """Apply to each run on its own: a refusal changes nothing for that run."""
        done, refused = [], []
        for run in runs:
            try:
                with transaction.atomic():
                    message = action.apply(run, request.user, form)
            except (RunsError, IllegalTransition) as exc:
                if isinstance(exc, DecisionRefused):
                    # the refusal's audit event went with the rolled-back block
                    exc.record()
                refused.append(f"run #{run.number}: {exc}")
                continue
            done.append(f"run #{run.number}: {message}")
            self.log_change(request, run, f"{action.label}: {message}")
        if done:
            self.message_user(
                request, f"{action.label}: " + "; ".join(done), messages.SUCCESS
            )
        if refused:
            self.message_user(
                request,
                f"{action.label} not applied (nothing changed) to "
                + "; ".join(refused),
                messages.WARNING if done else messages.ERROR,
            )
        return done, refused

    def confirmation(
        self,
        request,
        runs,
        action,
        form,
        *,
        bulk,
        name=None,
        title=None,
        explain=None,
        run=None,
    ):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title or f"{action.label}: confirm",
            "explain": explain or action.explain,
            "action": action,
            "action_name": name or f"{action.name}_runs",
            "runs": runs[:MAX_BULK],
            "form": form,
            "bulk": bulk,
            "run": run,
            "danger": getattr(action, "danger", False),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/runs/run/action_confirmation.html", context
        )


def _permission_check(action):
    def has_permission(self, request):
        return self.may(request, action)

    has_permission.__name__ = f"has_{action.name}_permission"
    return has_permission


for _action in ACTIONS.values():
    setattr(RunAdmin, f"has_{_action.name}_permission", _permission_check(_action))
