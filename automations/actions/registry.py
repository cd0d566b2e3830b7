"""The action, subject source and predicate registries, and what actions receive.

```python
from automations.actions import action, BusinessError

@action("kyc.request_evidence", journal=True)
def request_evidence(ctx):
    if "account" not in ctx.payload:
        raise BusinessError("no account", code="missing_account")
    ref = evidence_service.request(ctx.payload["account"], key=ctx.idempotency_key)
    return Result(outputs=[ctx.payload], result_ref=ref)
```

An action returns output payloads (a dict, a list of dicts, or a `Result`), or None
for no output. `BusinessError` is deterministic and never retried; any other
exception is an application error, retried with backoff up to the step's max
attempts. `journal=True` marks an action with outside side effects: its result is
journaled the moment it returns, so a crash before the step run commits replays the
result instead of calling the action again.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


class BusinessError(Exception):
    """A deterministic failure: retrying the same input would fail again."""

    def __init__(self, message: str, *, code: str = "business_error"):
        super().__init__(message)
        self.code = code


class AwaitApproval(Exception):
    """Raised by an action to park its item until a person decides."""

    def __init__(self, *, approvers: list[str] | None = None, deadline_seconds=None):
        super().__init__("awaiting approval")
        self.approvers = list(approvers or [])
        self.deadline_seconds = deadline_seconds


@dataclass
class Result:
    outputs: list[dict] = field(default_factory=list)
    result_ref: str = ""


@dataclass
class ActionContext:
    payload: dict
    parameters: dict
    run: Any
    step: Any
    work_item: Any
    subject: str
    attempt: int
    idempotency_key: str
    should_stop: Callable[[], bool]
    approval: dict | None = None


@dataclass(frozen=True)
class ActionSpec:
    key: str
    func: Callable[[ActionContext], Any]
    journal: bool = False
    # a selector finds subjects: its outputs count as subjects matched, and its
    # calls are not counted as actions invoked
    selects: bool = False
    description: str = ""


_actions: dict[str, ActionSpec] = {}
_subject_sources: dict[str, Callable[..., Iterable]] = {}
_predicates: dict[str, Callable[[dict], bool]] = {}


class UnknownAction(LookupError):
    pass


def action(key: str, *, journal: bool = False, selects: bool = False):
    """Register `func` as the action `key` (a dotted name such as "kyc.notify")."""

    def register(func):
        existing = _actions.get(key)
        if existing is not None and existing.func is not func:
            if (existing.func.__module__, existing.func.__qualname__) != (
                func.__module__,
                func.__qualname__,
            ):
                raise ValueError(f"action {key!r} is already registered")
        _actions[key] = ActionSpec(
            key=key,
            func=func,
            journal=journal,
            selects=selects,
            description=(func.__doc__ or "").strip().splitlines()[0]
            if func.__doc__
            else "",
        )
        return func

    return register


def get_action(key: str) -> ActionSpec:
    try:
        return _actions[key]
    except KeyError:
        raise UnknownAction(f"no action is registered under {key!r}") from None


def registered_actions() -> dict[str, ActionSpec]:
    return dict(sorted(_actions.items()))


def subject_source(key: str):
    """Register a callable `(run, parameters) -> iterable of dicts` as a source of
    subjects for `builtin.select_subjects`; each dict is one subject's payload and
    its "subject" key (or "id") names the subject."""

    def register(func):
        _subject_sources[key] = func
        return func

    return register


def get_subject_source(key: str):
    try:
        return _subject_sources[key]
    except KeyError:
        raise LookupError(f"no subject source is registered under {key!r}") from None


def predicate(key: str):
    """Register `func(payload) -> bool` for step conditions `{"predicate": key}`."""

    def register(func):
        _predicates[key] = func
        return func

    return register


def get_predicate(key: str):
    try:
        return _predicates[key]
    except KeyError:
        raise LookupError(f"no predicate is registered under {key!r}") from None
