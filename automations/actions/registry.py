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

from runs.conf import runs_settings


class BusinessError(Exception):
    """A deterministic failure: retrying the same input would fail again."""

    def __init__(
        self, message: str, *, code: str = "business_error", result_ref: str = ""
    ):
        super().__init__(message)
        self.code = code
        # what the failed attempt is about (e.g. the child run that failed)
        self.result_ref = result_ref


class AwaitApproval(Exception):
    """Raised by an action to park its item until a person decides."""

    def __init__(self, *, approvers: list[str] | None = None, deadline_seconds=None):
        super().__init__("awaiting approval")
        self.approvers = list(approvers or [])
        self.deadline_seconds = deadline_seconds


class AwaitChild(Exception):
    """Raised by `builtin.run_automation` to park its item, holding no worker, until
    the child run it started settles (`runs.engine.children`)."""

    def __init__(self, *, child_ref: str):
        super().__init__("awaiting a child run")
        self.child_ref = child_ref


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
    # a robot action runs as one external process per step run that pulls the
    # step's items itself (runs.robots.runner), not once per item
    robot: bool = False
    description: str = ""


_actions: dict[str, ActionSpec] = {}
_subject_sources: dict[str, Callable[..., Iterable]] = {}
_predicates: dict[str, Callable[[dict], bool]] = {}


class UnknownAction(LookupError):
    pass


def action(
    key: str, *, journal: bool = False, selects: bool = False, robot: bool = False
):
    """Register `func` as the action `key` (a dotted name such as "kyc.notify")."""

    def register(func):
        existing = _actions.get(key)
        # the same function imported twice (a reload) registers again; another
        # function under a taken key is a mistake
        same = existing is not None and (
            existing.func.__module__,
            existing.func.__qualname__,
        ) == (func.__module__, func.__qualname__)
        if existing is not None and existing.func is not func and not same:
            raise ValueError(f"action {key!r} is already registered")
        _actions[key] = ActionSpec(
            key=key,
            func=func,
            journal=journal,
            selects=selects,
            robot=robot,
            description=(func.__doc__ or "").strip().splitlines()[0]
            if func.__doc__
            else "",
        )
        return func

    return register


# a definition's own process: accepted only under RUNS_ROBOT_COMMANDS_IN_DEFINITIONS
# (robots are registered by the deployer, runs.robots.registry)
ROBOT_COMMAND_PARAMETERS = ("command", "cwd", "env")


def robot_parameters_problem(parameters: dict) -> str:
    """What is wrong with the parameters of a robot step ("" when nothing):
    `robot` names a robot registered in RUNS_ROBOTS; `grace_seconds` a number >= 0.
    `command` (a non-empty list of strings), `cwd` and `env` (an object of strings)
    instead of `robot` only while RUNS_ROBOT_COMMANDS_IN_DEFINITIONS is set."""
    given = [k for k in ROBOT_COMMAND_PARAMETERS if k in parameters]
    if "robot" in parameters:
        if given:
            return (
                f"{given[0]}: a step that names a robot takes no command, cwd or env "
                "(the robot's registration holds them)"
            )
        name = parameters["robot"]
        robots = runs_settings.ROBOTS
        if not isinstance(name, str) or not name:
            return "robot: must be the name of a robot registered in RUNS_ROBOTS"
        if not isinstance(robots, dict) or name not in robots:
            known = ", ".join(sorted(robots)) if isinstance(robots, dict) else ""
            return (
                f"robot: no robot {name!r} is registered in RUNS_ROBOTS "
                f"(registered: {known or 'none'})"
            )
    elif not runs_settings.ROBOT_COMMANDS_IN_DEFINITIONS:
        if given:
            return (
                f"{given[0]}: robot commands in definitions are refused (an Author "
                "is not the server's shell): name a robot the deployer registered in "
                'RUNS_ROBOTS, {"robot": "NAME"}, or the deployer sets '
                "RUNS_ROBOT_COMMANDS_IN_DEFINITIONS=1"
            )
        return "robot: required, the name of a robot registered in RUNS_ROBOTS"
    else:
        command = parameters.get("command")
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(part, str) and part for part in command)
        ):
            return "command: required, a non-empty list of strings"
        if not isinstance(parameters.get("cwd", ""), str):
            return "cwd: must be a string"
        env = parameters.get("env", {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            return "env: must be an object of strings"
    grace = parameters.get("grace_seconds", 10)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        return "grace_seconds: must be a number >= 0"
    return ""


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
