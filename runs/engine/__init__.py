"""The engine: step runs on django-q2, run progress, and housekeeping."""

from ..models import StepRun
from ..states import StepRunState
from .dispatch import enqueue, step_runs_ensure
from .housekeeping import housekeeping
from .progress import run_fail, run_progress, run_time_out
from .step_runs import StepRunner, step_run_execute

__all__ = [
    "StepRunner",
    "enqueue",
    "housekeeping",
    "run_fail",
    "run_progress",
    "run_time_out",
    "run_until_idle",
    "step_run_execute",
    "step_runs_ensure",
]


def run_until_idle(run=None, *, max_rounds: int = 10_000) -> int:
    """Execute queued step runs in this process until none is left (tests, the
    `run_automation --inline` command). Returns how many step runs ran."""
    executed = 0
    for _ in range(max_rounds):
        queued = StepRun.objects.filter(state=StepRunState.QUEUED)
        if run is not None:
            queued = queued.filter(run=run)
        step_run_id = queued.order_by("id").values_list("pk", flat=True).first()
        if step_run_id is None:
            break
        step_run_execute(step_run_id)
        executed += 1
    return executed
