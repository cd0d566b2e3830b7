import json
import time

from django.core.management.base import BaseCommand, CommandError

from automations.models import Automation
from runs.engine import run_until_idle
from runs.models import Run
from runs.selectors import worker_cluster_answers
from runs.services import RunsError, run_start
from runs.states import RUN_FINAL, RunState

# How long --wait gives a worker cluster to show it is there before saying none is.
CLUSTER_SECONDS = 10.0


class Command(BaseCommand):
    help = (
        "Start a run of an automation by hand. --wait waits for the worker cluster to "
        "settle it (and stops early, saying so, when no cluster answers within "
        "--cluster-seconds); --inline runs its steps in this process instead. Prints "
        "the state and counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--input", help="JSON object or list of objects")
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--inline", action="store_true")
        parser.add_argument(
            "--priority",
            type=int,
            default=0,
            help="where the run waits when the automation is at max_concurrent_runs "
            "(-100..100, higher first; default 0)",
        )
        parser.add_argument("--timeout", type=float, default=600)
        parser.add_argument(
            "--cluster-seconds",
            type=float,
            default=CLUSTER_SECONDS,
            help="with --wait: how long a worker cluster has to answer "
            f"(default {CLUSTER_SECONDS:g})",
        )

    def handle(
        self,
        *args,
        slug,
        input=None,
        wait=False,
        inline=False,
        priority=0,
        timeout=600,
        cluster_seconds=CLUSTER_SECONDS,
        **options,
    ):
        if not cluster_seconds > 0:
            raise CommandError("--cluster-seconds must be a positive number of seconds")
        automation = Automation.objects.filter(slug=slug).first()
        if automation is None:
            raise CommandError(f"no automation named {slug!r}")
        try:
            inputs = json.loads(input) if input else None
        except json.JSONDecodeError as exc:
            raise CommandError(f"--input is not valid JSON: {exc}") from None
        try:
            run = run_start(
                automation=automation,
                inputs=inputs,
                actor_label="command line",
                priority=priority,
            )
        except RunsError as exc:
            raise CommandError(str(exc)) from None
        if run.state == RunState.PENDING and automation.max_concurrent_runs:
            self.stdout.write(
                f"run #{run.number} ({run.pk}) waits for a free slot "
                f"(max_concurrent_runs {automation.max_concurrent_runs})"
            )
        else:
            self.stdout.write(f"run #{run.number} ({run.pk}) started")
        if inline:
            run_until_idle(run)
        elif wait:
            self._wait(run, timeout, cluster_seconds)
        run.refresh_from_db()
        self.stdout.write(
            f"run #{run.number}: {run.state}; items {run.total_items}, outputs "
            f"{run.output_items}, failed {run.failed_items}, "
            f"subjects {run.subjects_matched}, "
            f"actions {run.actions_invoked}"
        )

    def _wait(self, run, timeout: float, cluster_seconds: float) -> None:
        started = time.monotonic()
        deadline = started + timeout
        # asked once, after cluster_seconds: a cluster answers by then or is not there
        ask_at = started + min(cluster_seconds, timeout)
        settled = RUN_FINAL | {RunState.UNRESOLVED, RunState.AWAITING_INPUT}
        while Run.objects.values_list("state", flat=True).get(pk=run.pk) not in settled:
            now = time.monotonic()
            if ask_at is not None and now >= ask_at:
                if not worker_cluster_answers(run):
                    raise CommandError(
                        f"no worker cluster answers: run #{run.number} is started and "
                        f"its first step is queued, but no worker took it within "
                        f"{cluster_seconds:g}s and no cluster reports in. Start one "
                        "(manage.py qcluster, or ./dev up), or run the steps in this "
                        "process with --inline."
                    )
                ask_at = None
            if now > deadline:
                raise CommandError(
                    f"run #{run.number} did not settle within {timeout}s"
                )
            time.sleep(0.2)
