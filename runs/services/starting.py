"""Starting runs: the one `run_start` every trigger goes through."""

from contextlib import nullcontext

from django.db import connection, transaction
from django.utils import timezone

from automations.models import (
    Automation,
    AutomationStatus,
    AutomationVersion,
    TriggerKind,
)

from .. import ledger
from ..engine.bulk import PendingItems
from ..models import Run, StepRun
from ..states import RUN_PRIORITY_MAX, RUN_PRIORITY_MIN
from .errors import RunsError
from .start_write import next_number_sql, one_statement, run_write

MAX_INPUTS = 100_000


class InvalidInputs(RunsError):
    code = "invalid_inputs"


class NotRunnable(RunsError):
    code = "not_runnable"


class InvalidPriority(RunsError):
    code = "invalid_priority"


def priority_clean(priority) -> int:
    """A run's priority: an integer from RUN_PRIORITY_MIN to RUN_PRIORITY_MAX."""
    if priority is None:
        return 0
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidPriority(f"priority must be an integer, got {priority!r}")
    if not RUN_PRIORITY_MIN <= priority <= RUN_PRIORITY_MAX:
        raise InvalidPriority(
            f"priority must be from {RUN_PRIORITY_MIN} to {RUN_PRIORITY_MAX}, "
            f"got {priority}"
        )
    return priority


def next_number(name: str = "run") -> int:
    """Advance a named counter, creating it at 1; the row lock serialises
    concurrent callers (one upsert, `start_write.next_number_sql`)."""
    with connection.cursor() as cursor:
        cursor.execute(next_number_sql(), [name])
        return cursor.fetchone()[0]


def inputs_clean(inputs) -> list[dict]:
    if inputs is None:
        return []
    if isinstance(inputs, dict):
        inputs = [inputs]
    if not isinstance(inputs, list):
        raise InvalidInputs("inputs must be a list of JSON objects")
    if len(inputs) > MAX_INPUTS:
        raise InvalidInputs(f"at most {MAX_INPUTS} inputs per run, got {len(inputs)}")
    for index, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise InvalidInputs(
                f"inputs[{index}] must be a JSON object, got {type(item).__name__}"
            )
    return inputs


def version_for(
    automation: Automation, trigger_kind: str, version: AutomationVersion | None = None
) -> AutomationVersion:
    """The version a new run pins: the one asked for, else the latest published.

    Draft versions run only by hand: a manual run of an automation with no published
    version takes its latest draft.
    """
    if automation.status == AutomationStatus.RETIRED:
        raise NotRunnable(f"automation {automation.slug} is retired")
    if version is not None:
        if version.automation_id != automation.pk:
            raise NotRunnable(f"{version} is not a version of {automation.slug}")
        if not version.is_published and trigger_kind != TriggerKind.MANUAL:
            raise NotRunnable(f"{version} is a draft: drafts run only manually")
        return version
    chosen = automation.latest_published_version()
    if chosen is None and trigger_kind == TriggerKind.MANUAL:
        chosen = automation.latest_version()
    if chosen is None:
        raise NotRunnable(f"automation {automation.slug} has no published version")
    return chosen


def subject_of(payload: dict) -> str:
    value = payload.get("subject", "") if isinstance(payload, dict) else ""
    return str(value)[:254]


def run_start(
    *,
    automation: Automation,
    inputs=None,
    trigger_kind: str = TriggerKind.MANUAL,
    trigger=None,
    actor=None,
    actor_label: str = "",
    version: AutomationVersion | None = None,
    fired_at=None,
    rerun_of: Run | None = None,
    is_test_case: bool = False,
    priority: int = 0,
    parent: Run | None = None,
    parent_item_id: int | None = None,
    first_step=None,
) -> Run:
    """Create a run pinned to its version, with one work item of step 1 per input
    (no inputs: one empty item), and hand it to the engine after commit. A job's
    child run names its `parent` run and the work item waiting for it.

    An automation with `max_concurrent_runs` gets its run `pending` and waiting:
    it starts in this transaction if a slot is free and it is first in line
    (`priority`, then age), else when a slot frees (runs.engine.admission).

    `first_step`: the version's first step when the caller read it with the
    version (the API trigger); otherwise it is looked up here."""
    # runs.engine imports the machines and robots, which import runs.services:
    # loaded here, after both packages are
    from ..engine.admission import runs_admit
    from ..engine.dispatch import (
        enqueue,
        enqueue_writes_row,
        first_step_runs_wanted,
    )

    inputs = inputs_clean(inputs)
    priority = priority_clean(priority)
    limited = automation.max_concurrent_runs is not None
    version = version_for(automation, trigger_kind, version)
    if first_step is None or first_step.version_id != version.pk:
        first_step = version.steps.order_by("order").first()
    if first_step is None:
        raise NotRunnable(f"{version} has no steps")
    now = timezone.now()
    # everything but the run's number is made before the write (start_write)
    run = Run(
        automation=automation,
        version=version,
        trigger_kind=trigger_kind,
        trigger=trigger,
        fired_at=fired_at,
        run_by=actor if getattr(actor, "pk", None) else None,
        run_by_label=actor_label or (actor.get_username() if actor else trigger_kind),
        inputs=inputs,
        created_at=now,
        deadline_at=(
            now + timezone.timedelta(seconds=version.run_timeout_seconds)
            if version.run_timeout_seconds
            else None
        ),
        rerun_of=rerun_of,
        parent=parent,
        parent_item_id=parent_item_id,
        is_test_case=is_test_case,
        priority=priority,
        total_items=max(len(inputs), 1),
        current_step=first_step.name,
    )
    items = PendingItems(run_id=run.pk, step_id=first_step.pk, now=now)
    for payload in inputs or [{}]:
        items.add(payload, subject_of(payload))
    items.inputs_of_run = bool(inputs)  # they are `run.inputs`, in order
    created = {
        "state": run.state,
        "automation": automation.slug,
        "version": version.number,
        "trigger": trigger_kind,
        "inputs": len(inputs),
        "rerun_of": str(rerun_of.pk) if rerun_of else None,
    }
    if parent is not None:
        created["parent"] = str(parent.pk)
    if priority or limited:
        created["priority"] = priority
    events = [
        ledger.audit_event(
            verb="run.created",
            run=run,
            actor=actor,
            actor_label=run.run_by_label,
            after=created,
        )
    ]
    ledger.chain_new_run(run, events)
    # a limited automation's run waits for admission, which starts its step runs
    step_runs = [
        StepRun(run=run, step=first_step, created_at=now, queued_at=now)
        for _ in range(
            0 if limited else first_step_runs_wanted(first_step, run.total_items)
        )
    ]
    # one statement on PostgreSQL commits alone: no transaction, no COMMIT round
    # trip, when nothing else is written with it (its task goes after, to Redis)
    alone = (
        one_statement(items)
        and not limited
        and not enqueue_writes_row()
        and transaction.get_autocommit()  # outside any transaction
    )
    with nullcontext() if alone else transaction.atomic():
        run_write(run, items=items, events=events, step_runs=step_runs)
        for step_run in step_runs:
            enqueue(step_run.pk)
        if not limited:
            return run
        # the run's row is inserted before the automation's is locked (the lock
        # order of runs.engine.admission); it may start now or wait its turn
        for other in runs_admit(automation.pk, unlimited_orphans=True):
            if other.pk == run.pk:
                run.state, run.started_at = other.state, other.started_at
                run.deadline_at = other.deadline_at
    return run
