from django.core.management.base import BaseCommand

from runs.retention import retention_apply


class Command(BaseCommand):
    help = (
        "Archive finished runs older than RUNS_ARCHIVE_AFTER_DAYS and delete archived "
        "runs past RUNS_DELETE_ARCHIVED_AFTER_DAYS (each deletion is a run.deleted "
        "event in the global audit chain). --dry-run lists what would happen."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--archive-after-days", type=int)
        parser.add_argument("--delete-after-days", type=int)

    def handle(
        self,
        *args,
        dry_run=False,
        archive_after_days=None,
        delete_after_days=None,
        **options,
    ):
        result = retention_apply(
            dry_run=dry_run,
            archive_after_days=archive_after_days,
            delete_after_days=delete_after_days,
        )
        for label, numbers in (
            ("archive", result.archived),
            ("delete", result.deleted),
        ):
            if numbers:
                shown = ", ".join(f"#{n}" for n in numbers[:50])
                more = f" and {len(numbers) - 50} more" if len(numbers) > 50 else ""
                self.stdout.write(f"{label}: {shown}{more}")
        self.stdout.write(result.summary())
