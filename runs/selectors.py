"""Reads for the admin screens: run detail and dashboard.

Each selector runs a fixed number of queries, bounded by the size of one run or by
a date window; none of them scans the whole runs table.
"""

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, NullIf, TruncDate
from django.utils import timezone

from automations.models import WorkspaceRole
from automations.workspaces import VIEW_RUNS, holds_role, scoped, workspaces_where

from .mail.notifications import waiting_for_someone
from .models import AuditEvent, Run, RunItem, StepRun, WorkItem, WorkItemFile
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


def work_items_for(user, items=None, *perms, workspace: str = ""):
    """`items` (default: every work item) narrowed as `runs_for` narrows their
    runs. On the items' own path, not `run__in=runs_for(...)`: for a person who
    sees every run that IN list is every run, and SQLite walked all of them to
    find a handful of items (the dashboard at 100k runs)."""
    items = WorkItem.objects.all() if items is None else items
    items = scoped(items, user, *(perms or (VIEW_RUNS,)), path=f"run__{RUN_WORKSPACE}")
    if workspace:
        items = items.filter(run__automation__workspace__slug=workspace)
    return items


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
    # current: every step that still has open items (pending, in progress,
    # awaiting input), while the run is active; `run.current_step` names the step
    # whose step run started last, which may have finished while step 1 works on
    for entry in progress.values():
        entry.is_current = bool(entry.open) and run.state in RUN_ACTIVE
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
# The run states' colours (light theme): badge backgrounds under white text at a
# contrast of at least 4.5:1 (WCAG AA), chart bars and legends. One palette with the
# work items' (runs.admin.display.ITEM_COLOURS); runs/static/runs/admin.css repeats
# it as --runs-state-<value> with the dark theme's variants (tests/admin/test_palette
# holds the two to each other).
STATE_COLOURS = {
    RunState.PENDING: "#64748b",  # slate: waits for a slot
    RunState.RUNNING: "#1c64c8",  # blue
    RunState.AWAITING_INPUT: "#7c3aed",  # violet: waits for a person
    RunState.STOPPING: "#a35200",  # amber
    RunState.TERMINATING: "#b8336a",  # raspberry
    RunState.COMPLETED: "#1f7a3a",  # green
    RunState.COMPLETED_NO_ACTION: "#4d7a12",  # olive
    RunState.UNRESOLVED: "#8a6a00",  # ochre: failed items wait for a person
    RunState.CANCELLED: "#3f3f46",  # charcoal
    RunState.FAILED: "#c0271d",  # red
    RunState.TIMED_OUT: "#0b7285",  # cyan
}


# how many automations the lead-time chart draws (those with the most runs) and
# how many finished runs of the window it reads at most (the newest): a bounded
# read whatever the size of the table; the caption says when the cap was reached
LEAD_TIME_AUTOMATIONS = 6
LEAD_TIME_ROWS = 2000
FAILURE_CAUSES = 8
# runs that move by themselves: while one is visible the dashboard refreshes
# (awaiting_input waits for a person, so it does not keep the page polling)
RUNS_MOVING = (
    RunState.PENDING,
    RunState.RUNNING,
    RunState.STOPPING,
    RunState.TERMINATING,
)


@dataclass
class Dashboard:
    days: list
    by_day: dict  # date -> {state: n}
    by_automation: list  # [(name, {state: n}, total)]
    waiting: list  # runs, each with .awaiting_items (items awaiting a decision)
    states: list
    lead_times: list = field(default_factory=list)  # [(name, {day: (p50, p95, n)})]
    lead_times_capped: bool = False
    failure_causes: list = field(default_factory=list)  # [(step, cause, n items)]
    moving: bool = False  # some visible run moves by itself


def waiting_on_people() -> Q:
    """The dashboard's "waiting for someone": what notifications name
    (`waiting_for_someone`: unresolved, failed, timed out, cancelled with failed
    items) and runs whose items await an approval or input."""
    awaiting = WorkItem.objects.filter(
        run=OuterRef("pk"), state=WorkItemState.AWAITING_INPUT
    )
    return (
        waiting_for_someone()
        | Q(state=RunState.AWAITING_INPUT)
        | Q(Exists(awaiting), state=RunState.RUNNING)
    )


def percentile(ordered: list, q: float) -> float:
    """The nearest-rank `q` percentile (0 < q <= 100) of a sorted, non-empty list."""
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def lead_times_by_day(window, first, *, automations=LEAD_TIME_AUTOMATIONS):
    """Median and 95th percentile of the lead time (created → completed) per
    automation and day of completion, of the finished runs of `window` that ended
    since `first`: one query of at most LEAD_TIME_ROWS rows (the newest), the
    percentiles in Python. Returns ([(name, {day: (p50, p95, n)})], capped)."""
    since = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
    rows = list(
        # ended (completed_at is set when a run settles, unresolved included;
        # cleared when a retry reopens it): index run_completed_at
        window.filter(completed_at__gte=since)
        .order_by("-completed_at")
        .values_list("automation__name", "created_at", "completed_at")[
            : LEAD_TIME_ROWS + 1
        ]
    )
    capped = len(rows) > LEAD_TIME_ROWS
    per: dict = {}
    for name, created, completed in rows[:LEAD_TIME_ROWS]:
        day = timezone.localdate(completed)
        seconds = max((completed - created).total_seconds(), 0.0)
        per.setdefault(name, {}).setdefault(day, []).append(seconds)
    busiest = sorted(
        per.items(), key=lambda kv: (-sum(len(v) for v in kv[1].values()), kv[0])
    )[:automations]
    series = []
    for name, days in sorted(busiest):
        points = {}
        for day, values in days.items():
            values.sort()
            points[day] = (
                percentile(values, 50),
                percentile(values, 95),
                len(values),
            )
        series.append((name, points))
    return series, capped


def failure_causes(window, *, limit=FAILURE_CAUSES) -> list:
    """The top failure causes of the failed work items of `window`'s runs,
    counted by item: a failed item retried and failed again is one item, counted
    under its last failure (its code, else its type). [(step name, cause, n)]."""
    # the runs counter narrows the read to runs with failed items, whose items
    # are then found by run (index work_item_claim), not by a scan of all items
    failing = window.filter(failed_items__gt=0).order_by().values("pk")
    items = WorkItem.objects.filter(run__in=failing, state=WorkItemState.FAILED)
    rows = (
        items.annotate(
            # an empty code is NULL, so that the type stands in for it
            cause=Coalesce(
                NullIf("failure_code", Value("")), NullIf("failure_type", Value(""))
            )
        )
        .values_list("step__name", "cause")
        .annotate(n=Count("id"))
        .order_by("-n", "step__name", "cause")[:limit]
    )
    return [(step, cause or "unknown", n) for step, cause, n in rows]


def dashboard(
    *, days: int = DASHBOARD_DAYS, waiting_limit: int = 20, within=None
) -> Dashboard:
    """Runs by state per day and outcomes per automation over the last `days`
    (an indexed range on created_at), lead times and failure causes over the same
    window, runs waiting for someone, and whether a run moves; out of `within` (a
    Run queryset: what the person may see, `runs_for`). Six queries whatever
    the number of runs."""
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
    awaiting_items = (
        WorkItem.objects.filter(run=OuterRef("pk"), state=WorkItemState.AWAITING_INPUT)
        .order_by()
        .values("run")
        .annotate(n=Count("id"))
        .values("n")
    )
    waiting = list(
        runs.filter(waiting_on_people(), archived=False)
        .annotate(awaiting_items=Coalesce(Subquery(awaiting_items), 0))
        .select_related("automation", "version")
        .order_by("-number")[:waiting_limit]
    )
    lead_times, capped = lead_times_by_day(runs, first)
    return Dashboard(
        days=list(by_day),
        by_day=by_day,
        by_automation=by_automation,
        waiting=waiting,
        states=list(RunState),
        lead_times=lead_times,
        lead_times_capped=capped,
        failure_causes=failure_causes(window),
        moving=runs.filter(state__in=RUNS_MOVING).exists(),
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


def run_error(run: Run) -> str:
    """One line saying why a run is failed, timed out, unresolved or cancelled with
    failed items ("" otherwise), from the run row alone (lists show it per run)."""
    n = run.failed_items
    items = f"{n} work item{'s' if n != 1 else ''}"
    if run.state == RunState.FAILED:
        return run.error or f"the run failed; {items} failed"
    if run.state == RunState.TIMED_OUT:
        return run.error or (
            f"the run passed its timeout of {run.version.run_timeout_seconds}s; "
            f"{items} failed"
        )
    if run.state == RunState.UNRESOLVED:
        return f"{items} failed and wait for a retry or a resolution"
    if run.state == RunState.CANCELLED and n:
        by = (run.stop_options or {}).get("by") or "someone"
        return f"stopped by {by}; {items} failed and wait for a retry or a resolution"
    return run.error


@dataclass
class RunBreakdown:
    """Outcome counts of a run's run items: per step (in order) and per action."""

    outcomes: list  # the outcomes that occur, in RunItemOutcome order
    by_step: list  # [(order, step name, action, [n per outcome])]
    by_action: list  # [(action, [n per outcome])]
    failures: list  # [(step name, failure code, n)] of the failed items, top first


def run_breakdown(run: Run, *, failures_limit: int = 5) -> RunBreakdown:
    """The run page's breakdown: two grouped queries over the run's rows."""
    from .states import RunItemOutcome

    by_step: dict = {}
    by_action: dict = {}
    seen = set()
    for order, name, action, outcome, n in (
        RunItem.objects.filter(run=run)
        .values_list("step__order", "step__name", "action", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    ):
        seen.add(outcome)
        by_step.setdefault((order, name, action), {})[outcome] = n
        counts = by_action.setdefault(action, {})
        counts[outcome] = counts.get(outcome, 0) + n
    failures = list(
        WorkItem.objects.filter(run=run, state=WorkItemState.FAILED)
        .values_list("step__name", "failure_code")
        .annotate(n=Count("id"))
        .order_by("-n", "step__name", "failure_code")[:failures_limit]
    )
    outcomes = [o for o in RunItemOutcome.values if o in seen]

    def cells(counts: dict) -> list:
        return [counts.get(o, 0) for o in outcomes]

    return RunBreakdown(
        outcomes=outcomes,
        by_step=[(*key, cells(counts)) for key, counts in sorted(by_step.items())],
        by_action=[(action, cells(c)) for action, c in sorted(by_action.items())],
        failures=failures,
    )


# -- approvals --------------------------------------------------------------------

DECIDE_PERMISSION = "runs.approve_run"
# the roles a step's approvers may name as `workspace:ROLE`
WORKSPACE_APPROVER_ROLES = frozenset({WorkspaceRole.OPERATOR, WorkspaceRole.APPROVER})


class ApproverMatch:
    """Whether `user` is named among a work item's approvers: by username,
    `group:NAME` (a member of the group) or `workspace:ROLE` (`operator` or
    `approver`: who holds that role in the run's workspace, as a member there or
    through the tenant-wide group); no approvers named: anyone who may decide. The
    person's groups are read once, each (role, workspace) once, so one instance
    serves a whole list of items."""

    def __init__(self, user):
        self.user = user
        self.names = {user.get_username()} | {
            f"group:{name}" for name in user.groups.values_list("name", flat=True)
        }
        self.roles: dict = {}

    def __call__(self, approvers: list[str], workspace_id) -> bool:
        if not approvers or self.names & set(approvers):
            return True
        for name in approvers:
            role = name[len("workspace:") :] if name.startswith("workspace:") else ""
            if role not in WORKSPACE_APPROVER_ROLES:
                continue
            key = (role, workspace_id)
            if key not in self.roles:
                self.roles[key] = holds_role(self.user, role, workspace_id)
            if self.roles[key]:
                return True
        return False


def work_items_awaiting_decision(user, items=None):
    """Items awaiting input on which `user` may decide (of `items`, default all):
    they hold the decide permission in the run's workspace, did not start the run
    (four eyes) and are among the item's approvers (none named: anyone who may
    decide). The same rule as `runs.services.approvals.decision_refusal`, as a
    queryset."""
    items = WorkItem.objects.all() if items is None else items
    if not (user and user.is_authenticated):
        return items.none()
    # the decide permission where the item's run is (a workspace role, or the
    # tenant-wide Approver/Operator groups)
    items = scoped(items, user, DECIDE_PERMISSION, path="run__" + RUN_WORKSPACE)
    waiting = items.filter(state=WorkItemState.AWAITING_INPUT).exclude(run__run_by=user)
    # named approvers are few and JSON list containment differs per database:
    # the lists of the waiting items are read and matched here
    named_here = ApproverMatch(user)
    named = [
        pk
        for pk, approvers, workspace_id in waiting.exclude(approvers=[]).values_list(
            "pk", "approvers", "run__automation__workspace_id"
        )
        if named_here(approvers or [], workspace_id)
    ]
    return waiting.filter(Q(approvers=[]) | Q(pk__in=named))


# -- files ------------------------------------------------------------------------


def run_files(run_id):
    """A run's files, oldest first: its work items' (e-mail attachments, robot
    uploads) and its step runs' own (a robot's artifacts)."""
    return (
        WorkItemFile.objects.filter(
            Q(work_item__run_id=run_id)
            | Q(step_run__run_id=run_id, work_item__isnull=True)
        )
        .select_related("work_item__step", "step_run__step")
        .order_by("id")
    )
