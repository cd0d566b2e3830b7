"""One robot process per step run.

The step run claims the step's first due item (the robot gets it as
RC_WORKITEM_ID, as in Control Room), starts the robot with the `RC_*` environment
pointing at this server's work-items API, and then only watches: it heartbeats the
step run's lease and the lease of the item the robot holds, and reacts to the run's
state. Terminate (or a timeout, or the run failing) sends SIGTERM to the robot's
process group, then SIGKILL after `grace_seconds`; whatever item the robot still
holds then fails with the stop's cause ("terminated"). A robot that exits without
releasing its item (non-zero exit, crash, or a bug) has that item fail as an
application error, retried per the step's max attempts. The robot's output is kept
as the step run's log, without terminal escape codes or the server's temporary
paths (`console.robot_log_clean`; head and tail past
RUNS_ROBOT_LOG_BYTES), and the files it leaves in its artifacts directory as the
step run's files (`runs.robots.artifacts`).
"""

import logging
import os
import pwd
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from django.urls import reverse
from django.utils import timezone

from ..conf import runs_settings
from ..engine.lease import LeasedStepRun, stop_cause
from ..engine.progress import run_fail
from ..machines import work_items_claim
from ..machines.attempt import attempts_fail
from ..models import WorkItem
from ..secrets.references import redactor_for
from ..states import STOP_CAUSES, StepRunState, WorkItemState
from . import registry, tokens
from .artifacts import artifacts_keep
from .console import robot_log_clean

log = logging.getLogger("runs.robots")

POLL_SECONDS = 0.2


def api_host() -> str:
    """RUNS_ROBOT_API_URL joined with the path the robots' urls are included at."""
    marker = "files/x"
    prefix = reverse("runs-robots:download", args=["x"])[: -len(marker)]
    return runs_settings.ROBOT_API_URL.rstrip("/") + prefix.rstrip("/")


def capped(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = max(limit // 2 - 40, 0)
    cut = len(text) - 2 * half
    return f"{text[:half]}\n… [{cut} characters cut] …\n{text[-half:]}"


class RobotRunner(LeasedStepRun):
    """Runs the robot of one step run under the step run's lease (see
    `LeasedStepRun`: the same start, heartbeat and end as a Python step run)."""

    stopped_by = ""  # the stop cause the robot was signalled for
    launch: "registry.RobotLaunch | None" = None

    def work(self) -> str:
        try:
            # what runs is the deployer's registration (or, under the deployer's
            # flag, a definition's own command); a stored version that carries a
            # command is refused here, its items failing with the reason
            self.launch = registry.robot_launch(self.step.parameters)
        except registry.RobotRefused as exc:
            error = f"step {self.step.name}: {exc}"
            run_fail(self.run, error)
            self.finish(StepRunState.FAILED, error=error)
            return "run failed"
        if stop_cause(self.run):  # stopping or stopped: start no robot
            self.finish(StepRunState.FINISHED)
            return "finished"
        now = timezone.now()
        first = work_items_claim(
            self.run,
            self.step,
            limit=1,
            token=self.token,
            owner_id=self.step_run.pk,
            expires=now + timezone.timedelta(seconds=self.lease),
            now=now,
        )
        if not first:
            self.finish(StepRunState.FINISHED)
            return "finished"
        exit_code, output = self._run_robot(first[0]["id"])
        self._settle_held(exit_code)
        error = ""
        if self.stopped_by:
            to = StepRunState.CANCELLED
            error = f"robot stopped: {self.stopped_by}"
        elif exit_code != 0:
            to = StepRunState.FAILED
            error = f"robot exited with code {exit_code}"
        else:
            to = StepRunState.FINISHED
        self.finish(
            to,
            error=error,
            exit_code=exit_code,
            # redacted before the cut, so no half of a value survives it
            log=capped(
                redactor_for(self.step.parameters).text(output),
                runs_settings.ROBOT_LOG_BYTES,
            ),
        )
        return "finished" if to == StepRunState.FINISHED else error

    # -- the process -------------------------------------------------------------

    def environment(self, first_item_id: int) -> dict:
        """The robot's whole environment: its registration's (never the worker's)
        and the RC_* variables of this step run."""
        if self.launch is None:
            self.launch = registry.robot_launch(self.step.parameters)
        host = api_host()
        env = dict(self.launch.env)
        env.update(
            # the automation's workspace (issue 15): the `{ws}` of the API's paths
            RC_WORKSPACE_ID=self.run.automation.workspace.slug,
            RC_PROCESS_ID=self.run.automation.slug,
            RC_PROCESS_RUN_ID=str(self.run.pk),
            RC_ACTIVITY_RUN_ID=str(self.step_run.pk),
            RC_ROBOT_RUN_ID=str(self.step_run.pk),
            RC_WORKITEM_ID=str(first_item_id),
            RC_API_WORKITEM_HOST=host,
            RC_API_WORKITEM_TOKEN=tokens.token_for(self.step_run, "workitem"),
            RC_API_PROCESS_HOST=host,
            RC_API_PROCESS_TOKEN=tokens.token_for(self.step_run, "process"),
            # robocorp-vault: the secrets the step names, while the step run lives
            RC_API_SECRET_HOST=host,
            RC_API_SECRET_TOKEN=tokens.token_for(self.step_run, "secret"),
            ROBOT_ROOT=self.launch.cwd,
            PYTHONUNBUFFERED="1",
        )
        return env

    def _run_robot(self, first_item_id: int) -> tuple[int, str]:
        parameters = self.step.parameters
        grace = float(parameters.get("grace_seconds", 10))
        with (
            tempfile.TemporaryDirectory(prefix="runs-robot-") as artifacts,
            open(Path(artifacts) / "console.log", "w+b") as console,
        ):
            env = self.environment(first_item_id)
            env["ROBOT_ARTIFACTS"] = str(Path(artifacts) / self.launch.artifacts_dir)
            try:
                process = subprocess.Popen(
                    self.launch.command,
                    cwd=self.launch.cwd,
                    env=env,
                    **self._as_user(artifacts),
                    stdin=subprocess.DEVNULL,
                    stdout=console,
                    stderr=subprocess.STDOUT,
                    # its own process group: signals reach its children
                    start_new_session=True,
                )
            except OSError as exc:
                return -1, f"could not start the robot: {exc}"
            log.info("step run %s started robot pid %s", self.step_run.pk, process.pid)
            try:
                self._watch(process, grace)
            except BaseException:
                self._signal(process, signal.SIGKILL)
                process.wait()
                raise
            console.seek(0)
            output = console.read().decode("utf-8", "replace")
            # before the directory goes: its artifacts become the step run's files
            notes = artifacts_keep(self.step_run, Path(env["ROBOT_ARTIFACTS"]))
            if notes:
                output = "\n".join([output.rstrip("\n"), *notes]) + "\n"
        return process.returncode, robot_log_clean(output)

    def _as_user(self, artifacts: str) -> dict:
        """Popen arguments that start the robot as RUNS_ROBOT_USER (a root worker
        only), with none of root's groups; it owns its artifacts directory."""
        if not self.launch.user:
            return {}
        entry = pwd.getpwnam(self.launch.user)
        os.chown(artifacts, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _watch(self, process, grace: float) -> None:
        term_sent = None
        while process.poll() is None:
            time.sleep(POLL_SECONDS)
            now = time.monotonic()
            self.heartbeat()
            if term_sent is None:
                cause = stop_cause(self.run)
                if cause in STOP_CAUSES.values():
                    self.stopped_by = cause
                    log.info(
                        "step run %s: %s, SIGTERM to the robot", self.step_run.pk, cause
                    )
                    self._signal(process, signal.SIGTERM)
                    term_sent = now
            elif now - term_sent >= grace:
                log.info("step run %s: grace passed, SIGKILL", self.step_run.pk)
                self._signal(process, signal.SIGKILL)
                process.wait()

    @staticmethod
    def _signal(process, signum) -> None:
        try:
            os.killpg(process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    # -- after the robot ---------------------------------------------------------

    def _settle_held(self, exit_code: int) -> None:
        """Items the robot still holds: failed with the stop's cause after a stop,
        otherwise an application error (retried while attempts are left)."""
        held = list(
            WorkItem.objects.filter(
                run=self.run, lease_token=self.token, state=WorkItemState.IN_PROGRESS
            )
        )
        if not held:
            return
        if self.stopped_by:
            code = self.stopped_by.replace(" ", "_")
            message = self.stopped_by
        else:
            code = "robot_exit"
            message = f"robot exited with code {exit_code} without releasing the item"
        # after a stop the item fails for good; otherwise the step's retry rule
        attempts_fail(
            self.run,
            self.step,
            held,
            token=self.token,
            code=code,
            cause=message,
            step_run_id=self.step_run.pk,
            retry=not self.stopped_by,
        )
