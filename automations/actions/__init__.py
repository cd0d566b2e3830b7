"""Actions: Python callables registered under a key, run by the engine per work item."""

from .registry import (
    ActionContext,
    ActionSpec,
    AwaitApproval,
    AwaitChild,
    BusinessError,
    Result,
    action,
    get_action,
    get_predicate,
    get_subject_source,
    predicate,
    registered_actions,
    subject_source,
)

__all__ = [
    "ActionContext",
    "ActionSpec",
    "AwaitApproval",
    "AwaitChild",
    "BusinessError",
    "Result",
    "action",
    "get_action",
    "get_predicate",
    "get_subject_source",
    "predicate",
    "registered_actions",
    "subject_source",
]
