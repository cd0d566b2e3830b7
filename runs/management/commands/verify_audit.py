from django.core.management.base import BaseCommand, CommandError

from runs.ledger import verify_all


class Command(BaseCommand):
    help = (
        "Verify every ledger chain (audit events and run items). Exits non-zero and "
        "names the first bad row of each broken chain."
    )

    def handle(self, *args, **options):
        problems = list(verify_all())
        for problem in problems:
            self.stderr.write(f"BROKEN {problem}")
        if problems:
            raise CommandError(f"{len(problems)} ledger chain(s) failed verification")
        self.stdout.write(self.style.SUCCESS("ledger verified: every chain is intact"))
