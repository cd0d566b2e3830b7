"""The run page: one run's steps, items, ledger and audit trail, and the per-run
action views (confirm, apply). A mixin of `RunAdmin`."""

from itertools import pairwise

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode

from automations.workspaces import may

from .. import selectors
from ..engine.admission import queue_positions, waiting_runs
from ..evidence import admin as evidence
from ..files import file_response
from ..models import Run, WorkItem
from ..services.approvals import decision_refusals
from ..states import RunState, WorkItemState
from . import reports
from .approvals import decide_view
from .dashboard import dashboard_fragment_view
from .display import duration, state_badge
from .polling import polled
from .run_actions import ACTIONS
from .timeline import run_timeline

# how many child runs and outputs the run page shows (the API pages through all)
PAGE_CHILDREN = 100
PAGE_OUTPUTS = 50
FILES_SHOWN = 200
# the live parts of the run page (header, steps, timeline, items) poll this often
POLL_SECONDS = 3
# run states in which the engine moves the run on by itself; awaiting input and
# the final states wait for people (a decision reloads the page) or for nothing
RUN_MOVING = frozenset(
    {RunState.PENDING, RunState.RUNNING, RunState.STOPPING, RunState.TERMINATING}
)


def run_polls(run, steps) -> bool:
    """Whether the run page polls: the run is one the engine moves on and some item
    is pending or in progress, or a step run is queued or running."""
    if run.state not in RUN_MOVING:
        return False
    return any(
        s.counts.get(WorkItemState.PENDING)
        or s.counts.get(WorkItemState.IN_PROGRESS)
        or s.active_step_runs
        for s in steps
    )


def item_origins(steps) -> dict:
    """Where the run's work items came from, from the step counts already read:
    the first step's are the run's inputs, a later step's are the outputs of the
    step before it."""
    if not steps:
        return {"inputs": 0, "added": 0, "by_step": []}
    by_step = [
        (s.step.name, prev.step.name, s.total) for prev, s in pairwise(steps) if s.total
    ]
    return {
        "inputs": steps[0].total,
        "added": sum(n for _, _, n in by_step),
        "by_step": by_step,
    }


def lead_label(run, now=None) -> tuple[str, str]:
    """The header's lead time: how long the run took once ended, how long it has
    been going (or waiting for a slot) while not."""
    if run.completed_at:
        return "lead time", duration(run.lead_time)
    now = now or timezone.now()
    if run.state == RunState.PENDING:
        return "waiting for", duration(now - run.created_at)
    return "running for", duration(now - run.created_at)


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
                polled(self.admin_site, dashboard_fragment_view),
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
                "<path:object_id>/live/",
                polled(self.admin_site, self.run_live_view),
                name="runs_run_live",
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

    def run_for_page(self, request, object_id):
        """The run of the page with what its header shows, or None when it is
        unknown or of a workspace the person may not see."""
        run = self.get_object(request, unquote(object_id))
        if run is None:
            return None
        if not self.has_view_or_change_permission(request, run):
            raise PermissionDenied
        return Run.objects.select_related(
            "automation",
            "automation__workspace",
            "version",
            "rerun_of",
            "trigger",
            "stop_requested_by",
            "parent",
        ).get(pk=run.pk)

    def live_context(self, request, run) -> dict:
        """What the live parts of the run page show (header and counters, actions,
        steps, timeline, work items), for the page and for its polls alike."""
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
        polls = run_polls(run, steps)
        # why this person may not decide on the awaiting items shown (the same
        # rule as the service's), so that no Decide is offered and then refused
        refusals = decision_refusals(run, items, request.user)
        for item in items:
            item.refusal = refusals.get(item.pk, "")
        actions = self.allowed_actions(request, run)
        query = {
            k: v
            for k, v in (
                ("item_state", state_filter),
                ("item_step", step_filter),
                ("after", after),
            )
            if v
        }
        lead_name, lead_value = lead_label(run)
        position = queue_positions([run]).get(run.pk)
        return {
            "run": run,
            "state": state_badge(run.state),
            "steps": steps,
            "origins": item_origins(steps),
            "timeline": run_timeline(run, total=sum(s.step_runs for s in steps)),
            "items": items,
            "more_items": more_items,
            "next_after": items[-1].pk if items and more_items else None,
            "item_states": WorkItemState.choices,
            "state_filter": state_filter,
            "step_filter": step_filter,
            "why": selectors.run_error(run),
            "breakdown": selectors.run_breakdown(run),
            "actions": actions,
            "decide_refusal": self.decide_refusal(request, run, actions),
            "may_export": self.has_export_permission(request, run),
            "may_correct": may(
                request.user, "runs.retry_run", run.automation.workspace_id
            ),
            "polls": polls,
            "poll_seconds": POLL_SECONDS,
            "live_url": reverse("admin:runs_run_live", args=[run.pk])
            + (f"?{urlencode(query)}" if query else ""),
            "lead_name": lead_name,
            "lead": lead_value,
            "now": timezone.now(),
            # a waiting run (max_concurrent_runs): its place and the queue's length
            "queue_position": position,
            "queue_length": (
                waiting_runs(run.automation_id).order_by().count() if position else None
            ),
        }

    def run_live_view(self, request, object_id):
        """The live parts of the run page, for its htmx poll: the header (which
        carries the poll itself, dropped once nothing moves) and, out of band,
        the actions, steps, timeline and work items."""
        run = self.run_for_page(request, object_id)
        if run is None:
            raise Http404("no such run")
        context = {
            **self.admin_site.each_context(request),
            **self.live_context(request, run),
        }
        return TemplateResponse(request, "admin/runs/run/live.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.run_for_page(request, object_id)
        if run is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        context = {
            **self.admin_site.each_context(request),
            **self.live_context(request, run),
            "opts": self.opts,
            "title": f"{run} · {run.automation}",
            "original": run,
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
        }
        return TemplateResponse(request, "admin/runs/run/detail.html", context)
