"""Services: every write on runs goes through these (admin, API, commands, e-mail)."""

from ..engine.approvals import approvals_expire
from .approvals import (
    DecisionRefused,
    InvalidInput,
    decision_refusal,
    work_item_decide,
)
from .corrections import work_item_payload_edit
from .errors import InvalidRequest, NotAllowed, RunsError
from .operator import (
    run_archive,
    run_mark_test_case,
    run_rerun,
    run_resolve,
    run_retry,
    run_stop,
    run_unarchive,
)
from .starting import (
    InvalidInputs,
    InvalidPriority,
    NotRunnable,
    inputs_clean,
    priority_clean,
    run_start,
)

__all__ = [
    "DecisionRefused",
    "InvalidInput",
    "InvalidInputs",
    "InvalidPriority",
    "InvalidRequest",
    "NotAllowed",
    "NotRunnable",
    "RunsError",
    "approvals_expire",
    "decision_refusal",
    "inputs_clean",
    "priority_clean",
    "run_archive",
    "run_mark_test_case",
    "run_rerun",
    "run_resolve",
    "run_retry",
    "run_start",
    "run_stop",
    "run_unarchive",
    "work_item_decide",
    "work_item_payload_edit",
]
