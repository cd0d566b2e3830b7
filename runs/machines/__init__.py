"""The state machines: the only code that writes `state` on runs, step runs and items.

Each transition is a conditional `UPDATE … WHERE state IN (allowed sources)` that
writes its ledger record in the same transaction; no matching row means the move is
illegal and `IllegalTransition` is raised with nothing written.
"""

from .run import run_move
from .step_run import step_run_lease_extend, step_run_move, step_runs_end
from .work_item import work_items_claim, work_items_move

__all__ = [
    "run_move",
    "step_run_lease_extend",
    "step_run_move",
    "step_runs_end",
    "work_items_claim",
    "work_items_move",
]
