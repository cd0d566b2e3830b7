"""Robots registered by the deployer (`RUNS_ROBOTS`), and how one is started.

A definition names a robot (`{"robot": "loan-review"}`); what runs on the worker
(command, working directory, environment) is the deployer's, never an Author's:

```python
RUNS_ROBOTS = {
    "loan-review": {"robot_yaml": "/srv/robots/loans/robot.yaml",
                    "task": "Review applications"},
    "ledger-sync": {"command": ["/opt/robots/env/bin/python", "-m", "sync"],
                    "cwd": "/srv/robots/sync", "env": {"SYNC_MODE": "full"}},
}
```

A `robot_yaml` registration takes the task's `command` (or `shell`), `PATH`,
`PYTHONPATH` and `artifactsDir` from the robot's own robot.yaml, as Control Room
does; a leading `python` runs with the registration's `python` (default: the
worker's interpreter; Runs builds no conda environment). The robot process gets
only the registration's `env` plus what is built here (`RC_*` from the runner,
`PATH`, `PYTHONPATH`, `HOME`, `LANG`, `ROBOT_ROOT`, `ROBOT_ARTIFACTS`), never the
worker's environment. A worker running as root starts it as `RUNS_ROBOT_USER`.

Definitions that still carry a `command` (the format before registration) run only
while the deployer sets `RUNS_ROBOT_COMMANDS_IN_DEFINITIONS=1`.
"""

import os
import pwd
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.conf import settings

from automations.actions.registry import robot_parameters_problem

from ..conf import runs_settings

# the search path a robot gets after its own entries: system directories only
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
REGISTRATION_KEYS = {
    "command": {"command", "cwd", "env"},
    "robot_yaml": {"robot_yaml", "task", "env", "python"},
}


class RobotRefused(Exception):
    """A robot step this deployment will not start; the message says why."""


@dataclass(frozen=True)
class RobotLaunch:
    """What to start: the argv, its directory, its whole environment (before the
    runner's RC_* variables), the artifacts directory name and the OS user."""

    name: str
    command: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    artifacts_dir: str = "output"
    user: str = ""


def _base_dir() -> Path:
    return Path(getattr(settings, "BASE_DIR", Path.cwd()))


def _absolute(path: str, root: Path) -> Path:
    found = Path(path)
    return found if found.is_absolute() else root / found


def _python(command: list[str], python: str, *, bare: bool) -> list[str]:
    """`{python}` stands for the interpreter; so does a leading bare `python` or
    `python3` of a robot.yaml task (`bare`), which rcc would run with the robot's
    environment."""
    command = [part.replace("{python}", python) for part in command]
    if bare and command and command[0] in ("python", "python3"):
        command[0] = python
    return command


def _strings(value) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _string_list(value) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(part, str) and part for part in value)
    )


def robot_yaml_task(path: Path, task: str) -> dict:
    """The parts of a robot.yaml that start `task`: command, PATH, PYTHONPATH,
    artifactsDir. Raises RobotRefused naming what is wrong."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RobotRefused(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise RobotRefused(f"{path} is not valid YAML: {exc}") from None
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, dict) or task not in tasks:
        known = ", ".join(sorted(tasks)) if isinstance(tasks, dict) else "none"
        raise RobotRefused(f"{path} has no task {task!r} (tasks: {known})")
    spec = tasks[task] or {}
    if _string_list(spec.get("command")):
        command = list(spec["command"])
    elif isinstance(spec.get("shell"), str) and spec["shell"].strip():
        command = shlex.split(spec["shell"])
    else:
        raise RobotRefused(
            f"{path}: task {task!r} needs a `command` list or a `shell` line "
            "(robotTaskName is not supported)"
        )
    entries = {}
    for key in ("PATH", "PYTHONPATH"):
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RobotRefused(f"{path}: {key} must be a list of directories")
        entries[key] = value
    artifacts = data.get("artifactsDir") or "output"
    if (
        not isinstance(artifacts, str)
        or Path(artifacts).is_absolute()
        or (".." in Path(artifacts).parts)
    ):
        raise RobotRefused(f"{path}: artifactsDir must be a relative directory name")
    return {"command": command, "artifacts_dir": artifacts, **entries}


def registration_problem(name: str, spec) -> str:
    """What is wrong with one RUNS_ROBOTS entry ("" when nothing)."""
    if not isinstance(spec, dict):
        return f"robot {name!r}: must be an object"
    kind = "robot_yaml" if "robot_yaml" in spec else "command"
    unknown = set(spec) - REGISTRATION_KEYS[kind]
    if unknown:
        return f"robot {name!r}: unknown key(s) {', '.join(sorted(unknown))}"
    if not _strings(spec.get("env", {})):
        return f"robot {name!r}: env must be an object of strings"
    if kind == "command":
        if not _string_list(spec.get("command")):
            return f"robot {name!r}: command must be a non-empty list of strings"
        if not isinstance(spec.get("cwd", ""), str):
            return f"robot {name!r}: cwd must be a string"
        return ""
    if not isinstance(spec["robot_yaml"], str) or not isinstance(spec.get("task"), str):
        return f"robot {name!r}: robot_yaml and task must be strings"
    if not isinstance(spec.get("python", ""), str):
        return f"robot {name!r}: python must be a string"
    try:
        robot_yaml_task(_absolute(spec["robot_yaml"], _base_dir()), spec["task"])
    except RobotRefused as exc:
        return f"robot {name!r}: {exc}"
    return ""


def robots_problems() -> list[str]:
    """Every problem of the RUNS_ROBOTS setting (the system check reports them)."""
    robots = runs_settings.ROBOTS
    if not isinstance(robots, dict):
        return ["RUNS_ROBOTS must be an object of robot name -> registration"]
    return [
        p for name, spec in robots.items() if (p := registration_problem(name, spec))
    ]


def _user_home(user: str) -> str:
    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        raise RobotRefused(f"RUNS_ROBOT_USER {user!r} is not a user here") from None


def robot_user() -> str:
    """The OS user robots run as: RUNS_ROBOT_USER when this worker is root and it
    is set (a worker that is not root cannot switch users: robots run as it)."""
    user = runs_settings.ROBOT_USER
    if user and hasattr(os, "geteuid") and os.geteuid() == 0:
        return user
    return ""


def robot_launch(parameters: dict) -> RobotLaunch:
    """How to start the robot a step's parameters name; RobotRefused when this
    deployment will not start it (unknown robot, a definition's own command
    without RUNS_ROBOT_COMMANDS_IN_DEFINITIONS, a broken registration)."""
    problem = robot_parameters_problem(parameters)
    if problem:
        raise RobotRefused(f"parameters.{problem}")
    user = robot_user()
    if "robot" in parameters:
        name = parameters["robot"]
        spec = runs_settings.ROBOTS[name]
        problem = registration_problem(name, spec)
        if problem:
            raise RobotRefused(problem)
    else:  # a definition's own command, allowed by the deployer's flag
        name = ""
        spec = {k: parameters[k] for k in ("command", "cwd", "env") if k in parameters}
    home = _user_home(user) if user else os.path.expanduser("~")
    env = {"PATH": os.pathsep.join(SYSTEM_PATH), "HOME": home, "LANG": "C.UTF-8"}
    root = _base_dir()
    if "robot_yaml" in spec:
        robot_yaml = _absolute(spec["robot_yaml"], root)
        cwd = robot_yaml.parent
        task = robot_yaml_task(robot_yaml, spec["task"])
        python = spec.get("python") or sys.executable
        command = _python(task["command"], python, bare=True)
        # as an activated environment: the robot's own PATH entries, then its
        # interpreter's directory, then the system's
        path = [str(_absolute(p, cwd)) for p in task["PATH"]]
        path += [str(Path(python).parent), *SYSTEM_PATH]
        env["PATH"] = os.pathsep.join(path)
        if task["PYTHONPATH"]:
            env["PYTHONPATH"] = os.pathsep.join(
                str(_absolute(p, cwd)) for p in task["PYTHONPATH"]
            )
        artifacts = task["artifacts_dir"]
    else:
        cwd = _absolute(spec.get("cwd") or ".", root)
        command = _python(list(spec["command"]), sys.executable, bare=False)
        artifacts = "output"
    env.update(spec.get("env") or {})
    return RobotLaunch(
        name=name,
        command=command,
        cwd=str(cwd),
        env=env,
        artifacts_dir=artifacts,
        user=user,
    )
