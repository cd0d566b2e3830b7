"""Job runs: `builtin.run_automation` starts one child run of another automation per
work item and the item waits for it, holding no worker, as an approval waits.

The item's first call starts the child (the payload is its one input, pinned to the
child automation's latest published version) and parks the item (awaiting_input,
its run item `awaiting_approval` with the child run as `result_ref`). When the child
settles, `children_collect` (run by the job's `run_progress`) sends the item back to
pending with `approval = {"child": id, "state": state}`; the next call takes the
child's outcome: completed (or completed, no action) → succeeded with the child's
outputs as outputs (with `"pass_on": "input"`: the item's own payload, so that a
job's next step runs once per job item); anything else → failed, business,
`child_<state>`.

A retried job item asks its child again: a child that left failed items is retried
(its failed items), any other settled child is started afresh (`rerun_of` the old
one). A second call while the child still runs (a step run redelivered after a
crash) waits for the same child: one child per item, never two.
"""

import logging

from automations.actions.registry import AwaitChild, BusinessError, Result

from ..machines import work_items_move
from ..models import Run, RunOutput, WorkItem
from ..states import (
    RUN_ACTIVE,
    RUN_FINAL,
    RUN_RETRYABLE,
    RunState,
    WorkItemState,
)

log = logging.getLogger("runs.engine")

# a child run has settled once the engine has nothing more to do for it
CHILD_SETTLED = RUN_FINAL | {RunState.UNRESOLVED}
CHILD_SUCCEEDED = frozenset({RunState.COMPLETED, RunState.COMPLETED_NO_ACTION})
CHILD_OPEN = RUN_ACTIVE | {RunState.PENDING}
# jobs of jobs: how deep child runs may nest (a cycle is refused at import; this
# bounds what import cannot see, e.g. a definition changed since)
MAX_DEPTH = 10
AWAITING = frozenset({WorkItemState.AWAITING_INPUT})
PASS_ON_INPUT = "input"


def _ancestry(run: Run) -> list[Run]:
    chain, current = [run], run
    while current.parent_id and len(chain) <= MAX_DEPTH:
        current = Run.objects.only("pk", "number", "automation_id", "parent_id").get(
            pk=current.parent_id
        )
        chain.append(current)
    return chain


def child_outcome(child: Run, ctx) -> Result:
    """What the waiting item takes from its settled child: the child's outputs, or
    with `"pass_on": "input"` its own payload (the next step then runs once per job
    item, whatever the child returned)."""
    if child.state in CHILD_SUCCEEDED:
        if ctx.parameters.get("pass_on") == PASS_ON_INPUT:
            return Result(outputs=[ctx.payload], result_ref=str(child.pk))
        outputs = list(
            RunOutput.objects.filter(run=child)
            .order_by("id")
            .values_list("payload", flat=True)
        )
        return Result(outputs=outputs, result_ref=str(child.pk))
    raise BusinessError(
        f"child run #{child.number} ({child.automation.slug}) ended {child.state}",
        code=f"child_{child.state}",
        result_ref=str(child.pk),
    )


def child_run_step(ctx) -> Result:
    """The body of `builtin.run_automation` (see the module docstring)."""
    # not at module level: runs.services imports the engine (this module)
    from automations.models import Automation

    from ..services.operator import run_retry
    from ..services.starting import NotRunnable, run_start

    parent, item_id = ctx.run, ctx.work_item.pk
    child = (
        Run.objects.filter(parent_item_id=item_id)
        .select_related("automation")
        .order_by("-number")
        .first()
    )
    if child is not None:
        if child.state not in CHILD_SETTLED:
            raise AwaitChild(child_ref=str(child.pk))
        if child.state in CHILD_SUCCEEDED or (ctx.approval or {}).get("child") == str(
            child.pk
        ):
            # settled since the item last asked (or completed after a person
            # resolved its failures): the item takes its outcome
            return child_outcome(child, ctx)
        if child.state in RUN_RETRYABLE and child.failed_items:
            run_retry(child, reason=f"retry of job run #{parent.number}")
            raise AwaitChild(child_ref=str(child.pk))
    slug = ctx.parameters.get("automation")
    automation = (
        Automation.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    )
    if automation is None:
        raise BusinessError(f"no automation {slug!r} to run", code="child_unknown")
    ancestry = _ancestry(parent)
    if any(run.automation_id == automation.pk for run in ancestry):
        raise BusinessError(
            f"{automation.slug} is already running in this job (a cycle)",
            code="child_cycle",
        )
    if len(ancestry) > MAX_DEPTH:
        raise BusinessError(
            f"child runs nest at most {MAX_DEPTH} deep", code="child_too_deep"
        )
    version = automation.latest_published_version()
    if version is None:
        raise BusinessError(
            f"automation {automation.slug} has no published version",
            code="child_not_published",
        )
    try:
        child = run_start(
            automation=automation,
            inputs=[ctx.payload],
            version=version,
            trigger_kind=parent.trigger_kind,
            actor=parent.run_by,
            actor_label=f"job run #{parent.number}",
            rerun_of=child,
            parent=parent,
            parent_item_id=item_id,
        )
    except NotRunnable as exc:
        raise BusinessError(str(exc), code="child_not_runnable") from None
    raise AwaitChild(child_ref=str(child.pk))


def children_collect(run: Run) -> int:
    """Send the items of `run` whose (latest) child run settled back to pending, to
    take its outcome. The caller holds the run's lock. Returns how many."""
    latest: dict = {}
    for item_id, pk, state in (
        Run.objects.filter(parent=run, parent_item__state=WorkItemState.AWAITING_INPUT)
        .order_by("parent_item_id", "number")
        .values_list("parent_item_id", "pk", "state")
    ):
        latest[item_id] = (pk, state)
    collected = 0
    for item_id, (pk, state) in latest.items():
        if state not in CHILD_SETTLED:
            continue
        work_items_move(
            run,
            [item_id],
            WorkItemState.PENDING,
            allowed_from=AWAITING,
            updates={"approval": {"child": str(pk), "state": state}},
        )
        collected += 1
    return collected


def children_active(run: Run) -> bool:
    """Whether a child of `run` still works (a stopping job waits for them)."""
    return Run.objects.filter(parent=run, state__in=CHILD_OPEN).exists()


def child_waits(work_item: WorkItem) -> Run | None:
    """The child run an item awaiting input waits for (None: a person's decision)."""
    if work_item.state != WorkItemState.AWAITING_INPUT:
        return None
    # open, or settled and not yet taken by the job: either way the item waits for
    # the engine, not for a person
    return Run.objects.filter(parent_item=work_item).order_by("-number").first()


def children_stop(run: Run, *, actor, step_runs: str, pending_items: str) -> int:
    """Stop (or terminate) the open child runs of a job that is being stopped, with
    the job's options; a child that settled meanwhile is left as it is."""
    from ..services.operator import run_stop
    from ..states import IllegalTransition

    stopped = 0
    for child in Run.objects.filter(parent=run, state__in=CHILD_OPEN).order_by(
        "number"
    ):
        try:
            run_stop(
                child,
                actor=actor,
                step_runs=step_runs,
                pending_items=pending_items,
                reason=f"stop of job run #{run.number}",
            )
        except IllegalTransition as exc:
            log.info("child run %s not stopped: %s", child.number, exc)
            continue
        stopped += 1
    return stopped


def child_items_reset(run: Run, ids: list[int]) -> None:
    """A retried job item asks its child again instead of taking the outcome it
    already took (the caller moves the items, under the run's lock)."""
    WorkItem.objects.filter(pk__in=ids, run=run, approval__has_key="child").update(
        approval=None
    )


def jobs_collect() -> int:
    """Housekeeping: jobs with an item waiting for a child run that settled (its
    move happened outside `run_progress`, e.g. a timeout) move on."""
    from .progress import run_progress

    parents = (
        Run.objects.filter(
            children__state__in=CHILD_SETTLED,
            children__parent_item__state=WorkItemState.AWAITING_INPUT,
            state__in=[RunState.RUNNING, RunState.AWAITING_INPUT],
        )
        .distinct()
        .only("pk")
    )
    moved = 0
    for parent in parents:
        run_progress(Run.objects.get(pk=parent.pk))
        moved += 1
    return moved
