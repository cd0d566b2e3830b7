import time

from django.core.management.base import BaseCommand

from runs.tasks import housekeeping


class Command(BaseCommand):
    help = (
        "Run housekeeping once (expired leases, lost tasks, timeouts, stuck "
        "terminations, approval deadlines, schedule sync), or every N seconds."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--every", type=float, default=0, help="repeat every N seconds"
        )

    def handle(self, *args, every=0, **options):
        while True:
            report = housekeeping()
            self.stdout.write(", ".join(f"{k}={v}" for k, v in report.items()))
            if not every:
                return
            time.sleep(every)
