"""The run page: one run's steps, items, ledger and audit trail, and the per-run
action views (confirm, apply). A mixin of `RunAdmin`."""

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from automations.workspaces import may

from .. import selectors
from ..engine.admission import queue_positions, waiting_runs
from ..evidence import admin as evidence
from ..files import file_response
from ..models import Run, WorkItem
from ..services.approvals import decision_refusals
from ..states import RUN_ACTIVE, RunState, WorkItemState
from . import reports
from .approvals import decide_view
from .dashboard import dashboard_fragment_view
from .display import duration, state_badge
from .run_actions import ACTIONS

# how many child runs and outputs the run page shows (the API pages through all)
PAGE_CHILDREN = 100
PAGE_OUTPUTS = 50
FILES_SHOWN = 200


class RunPageMixin:
    """The run page and the per-run action views of `RunAdmin`."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "report/",
                view(lambda request: reports.report_view(self, request)),
                name="runs_run_report",
            ),
            path(
                "dashboard/",
                view(dashboard_fragment_view),
                name="runs_run_dashboard",
            ),
            # evidence packs (issue 14): the period report's and a run's
            path(
                "report/evidence.zip",
                view(lambda request: evidence.period_evidence_view(self, request)),
                name="runs_run_report_evidence",
            ),
            path(
                "<path:pk>/evidence.zip",
                view(lambda r, pk: evidence.run_evidence_view(self, r, pk)),
                name="runs_run_evidence",
            ),
            path(
                "<path:object_id>/files/<int:file_id>/download/",
                view(self.run_file_download_view),
                name="runs_run_file_download",
            ),
            path(
                "<path:object_id>/decide/<int:item_id>/",
                view(
                    lambda r, object_id, item_id: decide_view(
                        self, r, object_id, item_id
                    )
                ),
                name="runs_run_decide",
            ),
            path(
                "<path:object_id>/act/<slug:action_name>/",
                view(self.run_action_view),
                name="runs_run_action",
            ),
            *super().get_urls(),
        ]

    def run_file_download_view(self, request, object_id, file_id):
        """One of the run's files, as a download, for whoever may view the run;
        anyone else gets a 404, as for a file that does not exist."""
        run = self.get_object(request, unquote(object_id))
        if run is None or not self.has_view_permission(request, run):
            raise Http404("no such file")
        found = selectors.run_files(run.pk).filter(pk=file_id).first()
        if found is None:
            raise Http404("no such file")
        return file_response(found)

    def run_action_view(self, request, object_id, action_name):
        action = ACTIONS.get(action_name)
        if action is None:
            raise Http404(f"no run action {action_name!r}")
        run = self.get_object(request, unquote(object_id))
        if run is None:  # unknown, or of a workspace the person may not see
            raise Http404("no such run")
        if not self.may(request, action, run):
            raise PermissionDenied
        items = None
        if action.form_class.item_state:
            items = list(
                WorkItem.objects.filter(run=run, state=action.form_class.item_state)
                .select_related("step")
                .order_by("id")[:200]
            )
        if action.name == "decide" and request.method == "GET":
            # the items this person may decide on, and if none, why not: before
            # any form (a POST all the same is refused and recorded by the service)
            refusals = decision_refusals(run, items, request.user)
            items = [item for item in items if item.pk not in refusals]
            if not items:
                why = next(iter(refusals.values()), "no work item awaits input")
                messages.error(request, f"{action.label}: {why}.")
                return HttpResponseRedirect(
                    reverse("admin:runs_run_change", args=[run.pk])
                )
        form = action.form_class(
            request.POST if request.method == "POST" else None, items=items
        )
        if request.method == "POST" and form.is_valid():
            self.apply_each(request, [run], action, form)
            return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))
        return self.confirmation(request, [run], action, form, bulk=False, run=run)

    def decide_refusal(self, request, run, actions) -> str:
        """Why the run page offers no Approve / reject to a person who holds the
        decide permission while items of the run await input ('' otherwise)."""
        decide = ACTIONS["decide"]
        if (
            any(a.name == "decide" for a in actions)
            or not decide.offered(run)
            or not self.may(request, decide, run)
        ):
            return ""
        waiting = list(
            WorkItem.objects.filter(run=run, state=WorkItemState.AWAITING_INPUT)
            .order_by("id")
            .only("pk", "state", "approvers")[:200]
        )
        refusals = decision_refusals(run, waiting, request.user)
        return next(iter(refusals.values()), "")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, unquote(object_id))
        if run is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, run):
            raise PermissionDenied
        run = Run.objects.select_related(
            "automation",
            "automation__workspace",
            "version",
            "rerun_of",
            "trigger",
            "stop_requested_by",
            "parent",
        ).get(pk=run.pk)
        state_filter = request.GET.get("item_state", "")
        if state_filter not in WorkItemState.values:
            state_filter = ""
        try:
            step_filter = int(request.GET.get("item_step") or 0)
            after = int(request.GET.get("after") or 0)
        except ValueError:
            step_filter, after = 0, 0
        steps = selectors.run_steps_progress(run)
        items, more_items = selectors.run_work_items(
            run, state=state_filter, step_id=step_filter, after=after
        )
        active = run.state in RUN_ACTIVE or run.state == RunState.PENDING
        # why this person may not decide on the awaiting items shown (the same
        # rule as the service's), so that no Decide is offered and then refused
        refusals = decision_refusals(run, items, request.user)
        for item in items:
            item.refusal = refusals.get(item.pk, "")
        actions = self.allowed_actions(request, run)
        position = queue_positions([run]).get(run.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{run} · {run.automation}",
            "run": run,
            "original": run,
            "state": state_badge(run.state),
            "steps": steps,
            "items": items,
            "more_items": more_items,
            "next_after": items[-1].pk if items and more_items else None,
            "item_states": WorkItemState.choices,
            "state_filter": state_filter,
            "step_filter": step_filter,
            "run_items": selectors.run_items_recent(run),
            "audit": selectors.run_audit_trail(run),
            "files": list(selectors.run_files(run.pk)[:FILES_SHOWN]),
            # no ORDER BY: SQLite would walk the number index instead of rerun_of's
            "reruns": sorted(
                Run.objects.filter(rerun_of=run).order_by().values_list("number", "pk"),
                reverse=True,
            )[:10],
            # a job's child runs, in the order they started (index run_children)
            "children": list(
                Run.objects.filter(parent=run)
                .select_related("automation")
                .order_by("number")[: PAGE_CHILDREN + 1]
            ),
            "page_children": PAGE_CHILDREN,
            "outputs": list(run.outputs.order_by("id")[:PAGE_OUTPUTS]),
            "why": selectors.run_error(run),
            "breakdown": selectors.run_breakdown(run),
            "actions": actions,
            "decide_refusal": self.decide_refusal(request, run, actions),
            "may_export": self.has_export_permission(request, run),
            "may_correct": may(
                request.user, "runs.retry_run", run.automation.workspace_id
            ),
            "refresh_seconds": 5 if active else None,
            "lead": duration(run.lead_time) if run.lead_time else None,
            # a waiting run (max_concurrent_runs): its place and the queue's length
            "queue_position": position,
            "queue_length": (
                waiting_runs(run.automation_id).order_by().count() if position else None
            ),
        }
        return TemplateResponse(request, "admin/runs/run/detail.html", context)
