"""Reads for the admin screens: run detail and dashboard.

Each selector runs a fixed number of queries, bounded by the size of one run or by
a date window; none of them scans the whole runs table.
"""

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, Max, Min, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from automations.workspaces import VIEW_RUNS, scoped, workspaces_where

from .models import AuditEvent, Run, RunItem, StepRun, WorkItem
from .states import RUN_ACTIVE, RunState, StepRunState, WorkItemState

# from a run to its workspace (automations.workspaces.scoped's path)
RUN_WORKSPACE = "automation__workspace"


def runs_for(user, runs=None, *perms, workspace: str = ""):
    """`runs` (default: every run) narrowed to the workspaces where `user` holds
    any of `perms` (default: may view runs), and to the workspace `workspace` (a
    slug) when given. The one start of every run list a person sees: admin pages,
    dashboard, reports, exports, evidence packs (the API narrows further to a
    token's grants: runs.api.permissions.runs_visible_to)."""
    runs = Run.objects.all() if runs is None else runs
    runs = scoped(runs, user, *(perms or (VIEW_RUNS,)), path=RUN_WORKSPACE)
    if workspace:
        runs = runs.filter(automation__workspace__slug=workspace)
    return runs


def sees_every_workspace(user, perm: str = VIEW_RUNS) -> bool:
    """Whether `user` holds `perm` tenant-wide: only then do configuration events
    (the global chain, of every workspace) reach their lists and packs."""
    return workspaces_where(user, perm) is None


FINISHED_ITEM_STATES = (
    WorkItemState.DONE,
    WorkItemState.RESOLVED,
    WorkItemState.FAILED,
)


@dataclass
class StepProgress:
    step: object
    counts: dict = field(default_factory=dict)
    step_runs: int = 0
    active_step_runs: int = 0
    started_at: object = None
    finished_at: object = None
    is_current: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _n(self, *states) -> int:
        return sum(self.counts.get(s, 0) for s in states)

    @property
    def done(self) -> int:
        return self._n(WorkItemState.DONE)

    @property
    def resolved(self) -> int:
        return self._n(WorkItemState.RESOLVED)

    @property
    def failed(self) -> int:
        return self._n(WorkItemState.FAILED)

    @property
    def open(self) -> int:
        return self._n(
            WorkItemState.PENDING,
            WorkItemState.IN_PROGRESS,
            WorkItemState.AWAITING_INPUT,
        )

    def _pct(self, n) -> float:
        return round(100 * n / self.total, 1) if self.total else 0.0

    @property
    def done_pct(self) -> float:
        return self._pct(self.done)

    @property
    def resolved_pct(self) -> float:
        return self._pct(self.resolved)

    @property
    def failed_pct(self) -> float:
        return self._pct(self.failed)

    @property
    def status(self) -> str:
        if self.total == 0:
            return "not started"
        if self.open or self.active_step_runs:
            return "working"
        return "finished"


def run_steps_progress(run: Run) -> list[StepProgress]:
    """The run's steps in order with item counts per state and step-run timings
    (three queries whatever the size of the run)."""
    steps = list(run.version.steps.order_by("order"))
    progress = {step.pk: StepProgress(step=step) for step in steps}
    for step_id, state, n in (
        WorkItem.objects.filter(run=run)
        .values_list("step_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    ):
        if step_id in progress:
            progress[step_id].counts[state] = n
    for row in (
        StepRun.objects.filter(run=run)
        .values("step_id")
        .annotate(
            n=Count("id"),
            active=Count("id", filter=Q(state__in=["queued", "running"])),
            first=Min("started_at"),
            last=Max("finished_at"),
        )
        .order_by()
    ):
        entry = progress.get(row["step_id"])
        if entry:
            entry.step_runs, entry.active_step_runs = row["n"], row["active"]
            entry.started_at, entry.finished_at = row["first"], row["last"]
    for entry in progress.values():
        entry.is_current = entry.step.name == run.current_step and (
            run.state in RUN_ACTIVE or run.state == RunState.PENDING
        )
    return [progress[step.pk] for step in steps]


def run_work_items(
    run: Run, *, state: str = "", step_id=None, after: int = 0, limit=50
):
    """One page of the run's work items (keyset on id), filtered by state / step."""
    items = WorkItem.objects.filter(run=run).select_related("step").order_by("id")
    if state:
        items = items.filter(state=state)
    if step_id:
        items = items.filter(step_id=step_id)
    if after:
        items = items.filter(id__gt=after)
    page = list(items[: limit + 1])
    return page[:limit], len(page) > limit


def run_items_recent(run: Run, *, limit: int = 50) -> list[RunItem]:
    return list(
        RunItem.objects.filter(run=run).select_related("step").order_by("-seq")[:limit]
    )


def run_audit_trail(run: Run, *, limit: int = 100) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(run=run).order_by("-seq")[:limit])


# -- dashboard -------------------------------------------------------------------

DASHBOARD_DAYS = 14
STATE_COLOURS = {
    RunState.PENDING: "#9aa5b1",
    RunState.RUNNING: "#2f80ed",
    RunState.AWAITING_INPUT: "#9b51e0",
    RunState.STOPPING: "#f2994a",
    RunState.TERMINATING: "#eb5757",
    RunState.COMPLETED: "#27ae60",
    RunState.COMPLETED_NO_ACTION: "#6fcf97",
    RunState.UNRESOLVED: "#f2c94c",
    RunState.CANCELLED: "#828282",
    RunState.FAILED: "#c0392b",
    RunState.TIMED_OUT: "#8e44ad",
}


@dataclass
class Dashboard:
    days: list
    by_day: dict  # date -> {state: n}
    by_automation: list  # [(name, {state: n}, total)]
    waiting: list
    states: list


def dashboard(
    *, days: int = DASHBOARD_DAYS, waiting_limit: int = 20, within=None
) -> Dashboard:
    """Runs by state per day and outcomes per automation over the last `days`
    (an indexed range on created_at), and runs waiting for someone; out of
    `within` (a Run queryset: what the person may see, `runs_for`)."""
    runs = Run.objects.all() if within is None else within
    today = timezone.localdate()
    first = today - datetime.timedelta(days=days - 1)
    since = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
    window = runs.filter(created_at__gte=since)
    by_day: dict = {first + datetime.timedelta(days=i): {} for i in range(days)}
    for day, state, n in (
        window.annotate(day=TruncDate("created_at"))
        .values_list("day", "state")
        .annotate(n=Count("id"))
        .order_by()
    ):
        if day in by_day:
            by_day[day][state] = n
    per_automation: dict = {}
    for name, state, n in (
        window.values_list("automation__name", "state")
        .annotate(n=Count("id"))
        .order_by()
    ):
        per_automation.setdefault(name, {})[state] = n
    by_automation = sorted(
        (
            (name, counts, sum(counts.values()))
            for name, counts in per_automation.items()
        ),
        key=lambda row: (-row[2], row[0]),
    )
    waiting = list(
        runs.filter(
            state__in=[RunState.UNRESOLVED, RunState.FAILED, RunState.TIMED_OUT],
            archived=False,
        )
        .select_related("automation", "version")
        .order_by("-number")[:waiting_limit]
    )
    return Dashboard(
        days=list(by_day),
        by_day=by_day,
        by_automation=by_automation,
        waiting=waiting,
        states=list(RunState),
    )


def worker_cluster_answers(run: Run) -> bool:
    """Whether a django-q2 worker cluster is working for this database: one reports
    its stats (django-q2 Stat: shared with the Redis broker, or a shared cache), a
    worker took a step run of `run`, or a step run somewhere holds a live lease
    (its worker heartbeats: a busy cluster)."""
    from django_q.status import Stat

    if Stat.get_all():
        return True
    step_runs = StepRun.objects.all()
    if step_runs.filter(run=run).exclude(state=StepRunState.QUEUED).exists():
        return True
    return step_runs.filter(
        state=StepRunState.RUNNING, lease_expires_at__gt=timezone.now()
    ).exists()
