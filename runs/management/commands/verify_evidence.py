from django.core.management.base import BaseCommand, CommandError

from runs.evidence.verify import PackError, verify_pack


class Command(BaseCommand):
    help = (
        "Verify an evidence pack offline (no database): signatures, file digests, "
        "every row's hash chain and the signed checkpoints. Exits non-zero naming "
        "the first bad file or row. Same as `python -m runs.evidence.verify`."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("pack", help="FILE.zip")
        parser.add_argument(
            "--public-key", help="PEM file of the key you trust (ledger_public_key)"
        )

    def handle(self, *args, pack, public_key=None, **options):
        trusted = None
        if public_key:
            try:
                with open(public_key, "rb") as handle:
                    trusted = handle.read()
            except OSError as exc:
                raise CommandError(f"--public-key: {exc}") from None
        try:
            problems = verify_pack(pack, trusted)
        except (PackError, OSError, ValueError, TypeError) as exc:
            raise CommandError(f"{pack}: {exc}") from None
        for problem in problems:
            self.stderr.write(f"BROKEN {problem}")
        if problems:
            raise CommandError(f"{pack}: first problem: {problems[0]}")
        self.stdout.write(self.style.SUCCESS(f"{pack}: evidence pack intact"))
