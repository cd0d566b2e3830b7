import time

from django.core.management.base import BaseCommand, CommandError

from automations.models import Automation
from runs.regression.models import TestCaseResult
from runs.regression.services import suite_refresh, suite_version, test_suite_run
from runs.services import RunsError


class Command(BaseCommand):
    help = (
        "Re-run the test cases of an automation against a version (default: its "
        "latest, draft included) and print passed / failed per case with the "
        "differences. --inline runs the steps in this process; otherwise waits for "
        "the worker cluster. Exits non-zero when a case fails."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version names the automation version here, not Django's version flag
        return super().create_parser(
            prog_name, subcommand, conflict_handler="resolve", **kwargs
        )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--version", type=int, help="automation version number")
        parser.add_argument("--inline", action="store_true")
        parser.add_argument("--timeout", type=float, default=600)

    def handle(self, *args, slug, version=None, inline=False, timeout=600, **options):
        automation = Automation.objects.filter(slug=slug).first()
        if automation is None:
            raise CommandError(f"no automation named {slug!r}")
        try:
            chosen = suite_version(automation, version)
            result = test_suite_run(automation, version=chosen, inline=inline)
        except RunsError as exc:
            raise CommandError(str(exc)) from None
        executions = result.executions
        deadline = time.monotonic() + timeout
        while any(e.result == TestCaseResult.RUNNING for e in executions):
            if time.monotonic() > deadline:
                raise CommandError(f"the suite did not settle within {timeout}s")
            time.sleep(0.5)
            executions = suite_refresh(result.batch)
        failed = 0
        for execution in executions:
            run = f"run #{execution.run.number}" if execution.run else "no run"
            self.stdout.write(
                f"{execution.result.upper()}  {execution.test_case.name} ({run})"
            )
            for diff in execution.differences:
                where = (
                    f" {diff['step']}/{diff['subject'] or '(no subject)'}"
                    f"#{diff['index']}"
                    if "step" in diff
                    else ""
                )
                self.stdout.write(
                    f"    {diff['what']}{where}: expected {diff.get('expected')!r}, "
                    f"got {diff.get('actual')!r}"
                )
            failed += execution.result == TestCaseResult.FAILED
        summary = (
            f"{automation.slug} v{chosen.number}: {len(executions)} case(s), "
            f"{len(executions) - failed} passed, {failed} failed"
        )
        if failed:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
