from django.core.management.base import BaseCommand, CommandError

from runs.evidence.checkpoints import checkpoint_problems
from runs.ledger_verify import verify_all
from runs.retention import missing_runs


class Command(BaseCommand):
    help = (
        "Verify every ledger chain (audit events and run items), and that every run "
        "number issued either exists or was deleted with a run.deleted event in the "
        "global chain, and that every chain still holds its latest signed "
        "checkpoint (in the database and in RUNS_CHECKPOINT_DIR). Exits non-zero and "
        "names the first bad row of each broken chain."
    )

    def handle(self, *args, **options):
        problems = [str(problem) for problem in verify_all()]
        # a chain rewritten together with its head passes the links, not these
        problems += list(checkpoint_problems())
        missing = missing_runs()
        if missing:
            shown = ", ".join(str(n) for n in missing[:20])
            problems.append(
                f"run number(s) {shown} were issued but the run is gone and the "
                "global chain records no run.deleted event for it"
            )
        for problem in problems:
            self.stderr.write(f"BROKEN {problem}")
        if problems:
            raise CommandError(f"{len(problems)} ledger check(s) failed verification")
        self.stdout.write(self.style.SUCCESS("ledger verified: every chain is intact"))
