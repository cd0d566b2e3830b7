"""States of runs, step runs and work items, and the moves allowed between them.

Each machine is a table `target -> states it may be entered from`. The transition
functions in `runs.machines` are the only code that writes `state`; they update
`WHERE state IN (allowed sources)` and refuse the move when no row matched.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class RunState(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    AWAITING_INPUT = "awaiting_input", _("Awaiting input")
    STOPPING = "stopping", _("Stopping")
    TERMINATING = "terminating", _("Terminating")
    COMPLETED = "completed", _("Completed")
    COMPLETED_NO_ACTION = "completed_no_action", _("Completed, no action")
    UNRESOLVED = "unresolved", _("Unresolved")
    CANCELLED = "cancelled", _("Cancelled")
    FAILED = "failed", _("Failed")
    TIMED_OUT = "timed_out", _("Timed out")


R = RunState
RUN_FINAL = frozenset(
    {R.COMPLETED, R.COMPLETED_NO_ACTION, R.CANCELLED, R.FAILED, R.TIMED_OUT}
)
# States in which the engine may still start or finish work.
RUN_ACTIVE = frozenset({R.RUNNING, R.AWAITING_INPUT, R.STOPPING, R.TERMINATING})
# States that hold one of an automation's `max_concurrent_runs` slots
# (runs.engine.admission): the run is working or will go on by itself (an approval
# resumes it without asking again). `pending` is waiting for a slot; `unresolved`
# waits for people and, like every final state, holds none: a move from one of
# these states to any other frees a slot, in the move's own transaction.
RUN_OCCUPYING = RUN_ACTIVE
# Bounds of a run's `priority` (API body, admin run now, run_automation --priority):
# waiting runs start higher first, then oldest.
RUN_PRIORITY_MIN, RUN_PRIORITY_MAX = -100, 100
# States whose failed items may be retried (retry reopens the run).
RUN_RETRYABLE = frozenset({R.UNRESOLVED, R.CANCELLED, R.FAILED, R.TIMED_OUT})
# Run states in which a step run (Python or robot) stops at the next item, and the
# cause its in-flight items fail with.
STOP_CAUSES = {
    R.TERMINATING: "terminated",
    R.TIMED_OUT: "timed out",
    R.FAILED: "run failed",
    R.CANCELLED: "cancelled",
}
# Run states in which a stop has been asked (or the run ended): an action's
# `ctx.should_stop()` is true from the moment any stop is asked, though only the
# states of STOP_CAUSES make the engine stop at the next item.
STOP_ASKED = frozenset({R.STOPPING, *STOP_CAUSES})

RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    R.RUNNING: frozenset({R.PENDING, R.AWAITING_INPUT} | RUN_RETRYABLE),
    R.AWAITING_INPUT: frozenset({R.RUNNING}),
    R.STOPPING: frozenset({R.RUNNING, R.AWAITING_INPUT}),
    R.TERMINATING: frozenset({R.RUNNING, R.AWAITING_INPUT, R.STOPPING}),
    R.COMPLETED: frozenset({R.RUNNING, R.UNRESOLVED}),
    R.COMPLETED_NO_ACTION: frozenset({R.RUNNING}),
    # pending: a stop of a retried run that waits for a slot, when items of
    # earlier attempts failed in their action
    R.UNRESOLVED: frozenset({R.PENDING, R.RUNNING, R.STOPPING, R.TERMINATING}),
    R.CANCELLED: frozenset({R.PENDING, R.STOPPING, R.TERMINATING}),
    R.FAILED: frozenset({R.PENDING, R.RUNNING, R.AWAITING_INPUT, R.TERMINATING}),
    R.TIMED_OUT: frozenset({R.RUNNING, R.AWAITING_INPUT}),
    # a retry of a run of an automation with `max_concurrent_runs`: it waits for
    # a slot like a new run (runs.engine.admission.run_reopen)
    R.PENDING: RUN_RETRYABLE,
}


class WorkItemState(models.TextChoices):
    PENDING = "pending", _("Pending")
    IN_PROGRESS = "in_progress", _("In progress")
    AWAITING_INPUT = "awaiting_input", _("Awaiting input")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
    RESOLVED = "resolved", _("Resolved")


W = WorkItemState
WORK_ITEM_OPEN = frozenset({W.PENDING, W.IN_PROGRESS, W.AWAITING_INPUT})
WORK_ITEM_TRANSITIONS: dict[str, frozenset[str]] = {
    # claim; retry of a failed item; lease expired; approved
    W.IN_PROGRESS: frozenset({W.PENDING}),
    W.PENDING: frozenset({W.IN_PROGRESS, W.AWAITING_INPUT, W.FAILED}),
    # done by its action, or by a stop that marks pending items done
    W.DONE: frozenset({W.IN_PROGRESS, W.PENDING}),
    W.FAILED: frozenset({W.IN_PROGRESS, W.PENDING, W.AWAITING_INPUT}),
    W.AWAITING_INPUT: frozenset({W.IN_PROGRESS}),
    W.RESOLVED: frozenset({W.FAILED}),
}


class FailureType(models.TextChoices):
    BUSINESS = "business", _("Business")
    APPLICATION = "application", _("Application")


class StepRunState(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    FINISHED = "finished", _("Finished")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


S = StepRunState
STEP_RUN_ACTIVE = frozenset({S.QUEUED, S.RUNNING})
STEP_RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    # a worker picks it up; housekeeping requeues one whose worker died
    S.RUNNING: frozenset({S.QUEUED}),
    S.QUEUED: frozenset({S.RUNNING}),
    S.FINISHED: frozenset({S.RUNNING}),
    S.FAILED: frozenset({S.QUEUED, S.RUNNING}),
    S.CANCELLED: frozenset({S.QUEUED, S.RUNNING}),
}


class RunItemOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")
    AWAITING_APPROVAL = "awaiting_approval", _("Awaiting approval")
    IDEMPOTENT_REPLAY = "idempotent_replay", _("Idempotent replay")


class StopStepRuns(models.TextChoices):
    COMPLETE = "complete", _("Let in-flight step runs complete")
    TERMINATE = "terminate", _("Terminate in-flight step runs")


class StopPendingItems(models.TextChoices):
    FAILED = "failed", _("Mark pending items failed")
    DONE = "done", _("Mark pending items done")


class IllegalTransition(Exception):
    """A state change that the machine does not allow from the current state."""

    def __init__(self, obj, current, target, reason: str = ""):
        self.obj = obj
        self.current = current
        self.target = target
        name = obj._meta.verbose_name if hasattr(obj, "_meta") else type(obj).__name__
        label = getattr(obj, "number", None) or getattr(obj, "pk", "")
        message = reason or (f"{name} {label} cannot go from {current!s} to {target!s}")
        super().__init__(message)
