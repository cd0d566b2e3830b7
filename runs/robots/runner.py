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
as the step run's log (head and tail past RUNS_ROBOT_LOG_BYTES).
"""

import logging
import os
import pwd
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from .. import ledger
from ..conf import runs_settings
from ..engine.step_runs import STOP_CAUSES, idempotency_key
from ..machines import step_run_move, work_items_claim, work_items_move
from ..machines.work_item import LeaseLost
from ..models import Run, RunItem, StepRun, WorkItem
from ..states import FailureType, RunItemOutcome, StepRunState, WorkItemState
from . import registry, tokens

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


class RobotRunner:
    """Runs the robot of one step run; `step_runner` is the engine's StepRunner that
    moved the step run to running under its lease token."""

    def __init__(self, step_runner):
        self.engine = step_runner
        self.step_run: StepRun = step_runner.step_run
        self.run: Run = step_runner.run
        self.step = step_runner.step
        self.token = step_runner.token
        self.lease = step_runner.lease
        self.stop_cause = ""
        self.launch: registry.RobotLaunch | None = None

    def execute(self) -> str:
        try:
            # what runs is the deployer's registration (or, under the deployer's
            # flag, a definition's own command); a stored version that carries a
            # command is refused here, its items failing with the reason
            self.launch = registry.robot_launch(self.step.parameters)
        except registry.RobotRefused as exc:
            from ..engine.progress import run_fail

            error = f"step {self.step.name}: {exc}"
            run_fail(self.run, error)
            self._finish(StepRunState.FAILED, error=error)
            return "run failed"
        from .services import stop_cause

        if stop_cause(self.run):  # stopping or stopped: start no robot
            self._finish(StepRunState.FINISHED)
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
            self._finish(StepRunState.FINISHED)
            return "finished"
        self.step_run.lease_token = self.token
        exit_code, output = self._run_robot(first[0]["id"])
        self._settle_held(exit_code)
        error = ""
        if self.stop_cause:
            to = StepRunState.CANCELLED
            error = f"robot stopped: {self.stop_cause}"
        elif exit_code != 0:
            to = StepRunState.FAILED
            error = f"robot exited with code {exit_code}"
        else:
            to = StepRunState.FINISHED
        self._finish(
            to,
            error=error,
            exit_code=exit_code,
            log=capped(output, runs_settings.ROBOT_LOG_BYTES),
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
            RC_WORKSPACE_ID=runs_settings.ROBOT_WORKSPACE_ID,
            RC_PROCESS_ID=self.run.automation.slug,
            RC_PROCESS_RUN_ID=str(self.run.pk),
            RC_ACTIVITY_RUN_ID=str(self.step_run.pk),
            RC_ROBOT_RUN_ID=str(self.step_run.pk),
            RC_WORKITEM_ID=str(first_item_id),
            RC_API_WORKITEM_HOST=host,
            RC_API_WORKITEM_TOKEN=tokens.token_for(self.step_run, "workitem"),
            RC_API_PROCESS_HOST=host,
            RC_API_PROCESS_TOKEN=tokens.token_for(self.step_run, "process"),
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
                    start_new_session=True,  # its own process group: signals reach children
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
        return process.returncode, output

    def _as_user(self, artifacts: str) -> dict:
        """Popen arguments that start the robot as RUNS_ROBOT_USER (a root worker
        only), with none of root's groups; it owns its artifacts directory."""
        if not self.launch.user:
            return {}
        entry = pwd.getpwnam(self.launch.user)
        os.chown(artifacts, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _watch(self, process, grace: float) -> None:
        last_heartbeat = time.monotonic()
        term_sent = None
        while process.poll() is None:
            time.sleep(POLL_SECONDS)
            now = time.monotonic()
            if now - last_heartbeat >= self.lease / 3:
                self._heartbeat()
                last_heartbeat = now
            if term_sent is None:
                cause = self._stop_cause()
                if cause in STOP_CAUSES.values():
                    self.stop_cause = cause
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

    def _stop_cause(self) -> str:
        state, deadline = (
            Run.objects.filter(pk=self.run.pk).values_list("state", "deadline_at").get()
        )
        if state in STOP_CAUSES:
            return STOP_CAUSES[state]
        if deadline and timezone.now() >= deadline:
            from ..engine.progress import run_time_out

            run_time_out(self.run)  # the run's open items fail "timed out"
            return "timed out"
        return ""

    def _heartbeat(self) -> None:
        expires = timezone.now() + timezone.timedelta(seconds=self.lease)
        with transaction.atomic():
            if not StepRun.objects.filter(
                pk=self.step_run.pk, lease_token=self.token, state=StepRunState.RUNNING
            ).update(lease_expires_at=expires):
                raise LeaseLost(
                    f"step run {self.step_run.pk} no longer holds its lease"
                )
            WorkItem.objects.filter(
                lease_token=self.token, state=WorkItemState.IN_PROGRESS
            ).update(lease_expires_at=expires)

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
        now = timezone.now()
        if self.stop_cause:
            code = self.stop_cause.replace(" ", "_")
            message = self.stop_cause
        else:
            code = "robot_exit"
            message = f"robot exited with code {exit_code} without releasing the item"
        retry, fail, run_items = [], [], []
        for item in held:
            if not self.stop_cause and item.attempts < self.step.max_attempts:
                retry.append(item.pk)
            else:
                fail.append(item.pk)
            run_items.append(
                RunItem(
                    run=self.run,
                    work_item_id=item.pk,
                    step=self.step,
                    step_run_id=self.step_run.pk,
                    action=self.step.action,
                    subject=item.subject,
                    parameters=self.step.parameters,
                    attempt=item.attempts,
                    idempotency_key=idempotency_key(
                        self.run.pk, item.pk, self.step.action
                    ),
                    outcome=RunItemOutcome.FAILED,
                    failure_type=FailureType.APPLICATION,
                    failure_cause=message,
                    started_at=item.updated_at,
                    finished_at=now,
                )
            )
        failure = {
            "failure_type": FailureType.APPLICATION,
            "failure_code": code,
            "failure_message": message,
        }
        backoff = self.step.retry_backoff_seconds
        with transaction.atomic():
            if retry:
                work_items_move(
                    self.run,
                    retry,
                    WorkItemState.PENDING,
                    fence_token=self.token,
                    allowed_from=frozenset({WorkItemState.IN_PROGRESS}),
                    updates={
                        **failure,
                        "available_at": now + timezone.timedelta(seconds=backoff),
                    },
                )
            if fail:
                work_items_move(
                    self.run,
                    fail,
                    WorkItemState.FAILED,
                    fence_token=self.token,
                    allowed_from=frozenset({WorkItemState.IN_PROGRESS}),
                    updates=failure,
                )
            ledger.append(
                run=self.run,
                run_items=run_items,
                counters={"failed_items": F("failed_items") + len(fail)},
            )

    def _finish(self, to: str, **updates) -> None:
        step_run_move(
            self.step_run,
            to,
            lease_token=self.token,
            updates={
                "finished_at": timezone.now(),
                "lease_expires_at": None,
                **updates,
            },
        )
