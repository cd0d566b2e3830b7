"""The runs admin: its options, permissions and the operator actions (bulk and
per run); the list's columns, live rows and audit doors are
`run_list.RunListMixin`, the run page is `run_page.RunPageMixin`."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV

from automations.admin.scoping import WorkspaceScopedAdmin
from automations.workspaces import may, may_somewhere, scoped

from ..exports import audit_filename, audit_response
from ..models import Run, RunItem, WorkItem
from ..resources import RunItemResource, RunResource
from ..selectors import work_items_awaiting_decision
from ..services import RunsError
from ..services.approvals import DecisionRefused, decision_refusals
from ..states import IllegalTransition, WorkItemState
from . import audit_export, forms
from .changelist import (
    ArchivedFilter,
    KindFilter,
    TestSuiteRunsFilter,
    WindowPaginator,
)
from .run_actions import ACTIONS, EXPORT_PERMISSION
from .run_list import RunListMixin
from .run_page import RunPageMixin

MAX_BULK = 1000


def _bulk(action):
    def bulk(modeladmin, request, queryset):
        return modeladmin.bulk_action(request, queryset, action)

    bulk.__name__ = f"{action.name}_runs"
    return admin.action(
        description=f"{action.label} (selected runs)", permissions=[action.name]
    )(bulk)


@admin.register(Run)
class RunAdmin(RunListMixin, RunPageMixin, ExportMixin, WorkspaceScopedAdmin):
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
    # the Trigger and Run by cells' runs and user: joined for the page's rows
    # only (select_related leaves the paginator's and date drill-down's
    # queries alone, annotations would not)
    list_select_related = ["automation", "version", "rerun_of", "parent", "run_by"]
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
        if action.name == "decide":
            runs = self.runs_to_decide(request, runs)
            if not runs:
                return None
        form = action.form_class(request.POST if request.POST.get("confirm") else None)
        if form.is_bound and form.is_valid():
            self.apply_each(request, runs, action, form)
            return None
        return self.confirmation(request, runs, action, form, bulk=True)

    def runs_to_decide(self, request, runs):
        """Of `runs`, those with an item awaiting the person's decision (four
        eyes, approvers: work_items_awaiting_decision); the others are named
        with the reason before any form is shown, and left out."""
        mine = set(
            work_items_awaiting_decision(
                request.user, WorkItem.objects.filter(run__in=[r.pk for r in runs])
            ).values_list("run_id", flat=True)
        )
        left_out = [run for run in runs if run.pk not in mine][:10]
        if left_out:
            reasons = []
            for run in left_out:
                waiting = WorkItem.objects.filter(
                    run=run, state=WorkItemState.AWAITING_INPUT
                ).only("pk", "state", "approvers")[:50]
                why = next(
                    iter(decision_refusals(run, waiting, request.user).values()),
                    f"run {run.number} has no work items awaiting input",
                )
                reasons.append(f"run #{run.number}: {why}")
            self.message_user(
                request,
                "Approve / reject not offered for " + "; ".join(reasons),
                messages.WARNING if mine else messages.ERROR,
            )
        return [run for run in runs if run.pk in mine]

    @admin.action(description="Export audit trail (selected runs)")
    def export_audit(self, request, queryset):
        """The audit CSV of the selected runs, straight away (no choice to make):
        those of the workspaces where the person may export."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        response = audit_export.runs_audit_download(
            self.runs_may(request, queryset, EXPORT_PERMISSION)
        )
        if response is None:
            self.message_user(
                request,
                "You may not export any of the selected runs; nothing exported.",
                messages.ERROR,
            )
        return response

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
