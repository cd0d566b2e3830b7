"""What every step run shares, Python or robot: its lease token, the heartbeat that
keeps its lease (and its items') alive, the move that starts it and the one that
ends it, and the reading of its run's state."""

import logging
import os
import socket
import time
import uuid

from django.utils import timezone

from automations.actions.registry import UnknownAction, get_action

from ..conf import runs_settings
from ..machines import run_move, step_run_lease_extend, step_run_move
from ..machines.work_item import LeaseLost
from ..models import Run, StepRun
from ..secrets.references import redactor_for
from ..states import STOP_CAUSES, IllegalTransition, RunState, StepRunState
from .progress import run_fail, run_progress, run_time_out

log = logging.getLogger("runs.engine")


def stop_cause(run: Run) -> str:
    """Why the run's step runs must take no new item ("" when they may); a run past
    its deadline is timed out here."""
    state, deadline = (
        Run.objects.filter(pk=run.pk).values_list("state", "deadline_at").get()
    )
    run.state, run.deadline_at = state, deadline
    if state in STOP_CAUSES:
        return STOP_CAUSES[state]
    if state not in (RunState.RUNNING, RunState.AWAITING_INPUT):
        return "stopping"
    if deadline and timezone.now() >= deadline:
        run_time_out(run)  # the run's open items fail "timed out"
        return "timed out"
    return ""


def step_run_load(step_run_id: int) -> StepRun:
    return StepRun.objects.select_related(
        "run", "run__automation", "step", "step__version"
    ).get(pk=step_run_id)


class LeasedStepRun:
    """One execution of a step run under a fresh lease token; subclasses do the
    work (`work`), this class starts it, heartbeats and ends it."""

    def __init__(self, step_run_id: int, *, step_run: StepRun | None = None):
        self.step_run = step_run or step_run_load(step_run_id)
        self.run: Run = self.step_run.run
        self.step = self.step_run.step
        self.token = uuid.uuid4()
        self.lease = runs_settings.LEASE_SECONDS
        self._last_heartbeat = time.monotonic()

    def lease_expires(self):
        return timezone.now() + timezone.timedelta(seconds=self.lease)

    def execute(self) -> str:
        now = timezone.now()
        try:
            step_run_move(
                self.step_run,
                StepRunState.RUNNING,
                updates={
                    "lease_token": self.token,
                    "lease_expires_at": now + timezone.timedelta(seconds=self.lease),
                    "worker": f"{socket.gethostname()}:{os.getpid()}",
                    "started_at": self.step_run.started_at or now,
                },
            )
        except IllegalTransition:
            # delivered twice, or cancelled before it started: nothing to do
            state = (
                StepRun.objects.filter(pk=self.step_run.pk)
                .values_list("state", flat=True)
                .first()
            )
            return f"step run {self.step_run.pk} is {state}"
        self._last_heartbeat = time.monotonic()
        if self.run.state == RunState.PENDING:
            try:
                run_move(
                    self.run, RunState.RUNNING, actor_label="engine", verb="run.started"
                )
            except IllegalTransition:
                pass
        try:
            self.spec = get_action(self.step.action)
        except UnknownAction as exc:
            run_fail(self.run, f"step {self.step.name}: {exc}")
            self.finish(StepRunState.FAILED, error=str(exc))
            return "run failed"
        try:
            result = self.work()
        except LeaseLost as exc:
            log.warning("step run %s lost its lease: %s", self.step_run.pk, exc)
            return "lease lost"
        except Exception as exc:
            log.exception("step run %s broke", self.step_run.pk)
            self.on_error(exc)
            self.finish(StepRunState.FAILED, error=repr(exc))
            raise
        run_progress(self.run)
        return result

    def work(self) -> str:
        raise NotImplementedError

    def on_error(self, exc: Exception) -> None:
        """The work broke: give back what it holds before the step run fails."""

    def heartbeat(self) -> None:
        """Extend the step run's lease and its items' (at most every third of the
        lease); LeaseLost once another holder took over."""
        if time.monotonic() - self._last_heartbeat < self.lease / 3:
            return
        step_run_lease_extend(self.step_run.pk, self.token, self.lease_expires())
        self._last_heartbeat = time.monotonic()

    def finish(self, to: str, error: str = "", **updates) -> None:
        # a step run's error and a robot's log carry no value of the step's
        # secrets (runs.secrets.references)
        redact = redactor_for(self.step.parameters, self.run.automation.workspace_id)
        error = redact.text(error)
        if "log" in updates:
            updates["log"] = redact.text(updates["log"])
        step_run_move(
            self.step_run,
            to,
            lease_token=self.token,
            updates={
                "finished_at": timezone.now(),
                "lease_expires_at": None,
                "error": error,
                **updates,
            },
        )
