import json
import time

from django.core.management.base import BaseCommand, CommandError

from automations.models import Automation
from runs.engine import run_until_idle
from runs.models import Run
from runs.services import RunsError, run_start
from runs.states import RUN_FINAL, RunState


class Command(BaseCommand):
    help = (
        "Start a run of an automation by hand. --wait waits for the worker cluster to "
        "settle it; --inline runs its steps in this process instead. Prints the state "
        "and counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--input", help="JSON object or list of objects")
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--inline", action="store_true")
        parser.add_argument("--timeout", type=float, default=600)

    def handle(self, *args, slug, input=None, wait=False, inline=False, timeout=600, **options):
        automation = Automation.objects.filter(slug=slug).first()
        if automation is None:
            raise CommandError(f"no automation named {slug!r}")
        try:
            inputs = json.loads(input) if input else None
        except json.JSONDecodeError as exc:
            raise CommandError(f"--input is not valid JSON: {exc}") from None
        try:
            run = run_start(automation=automation, inputs=inputs, actor_label="command line")
        except RunsError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"run #{run.number} ({run.pk}) started")
        if inline:
            run_until_idle(run)
        elif wait:
            deadline = time.monotonic() + timeout
            settled = RUN_FINAL | {RunState.UNRESOLVED, RunState.AWAITING_INPUT}
            while Run.objects.values_list("state", flat=True).get(pk=run.pk) not in settled:
                if time.monotonic() > deadline:
                    raise CommandError(f"run #{run.number} did not settle within {timeout}s")
                time.sleep(0.2)
        run.refresh_from_db()
        self.stdout.write(
            f"run #{run.number}: {run.state}; items {run.total_items}, outputs "
            f"{run.output_items}, failed {run.failed_items}, subjects {run.subjects_matched}, "
            f"actions {run.actions_invoked}"
        )
