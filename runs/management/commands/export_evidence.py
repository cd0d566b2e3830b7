import datetime
import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from runs.evidence.packs import PackScopeError, period_pack, run_pack
from runs.evidence.signing import SigningKeyError
from runs.models import Run


def _instant(text: str, name: str) -> datetime.datetime:
    value = parse_datetime(text)
    if value is None:
        day = parse_date(text)
        if day is None:
            raise CommandError(f"--{name}: not an ISO 8601 date or date-time: {text!r}")
        value = datetime.datetime.combine(day, datetime.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value


class Command(BaseCommand):
    help = (
        "Write an evidence pack (a signed zip an auditor verifies offline with "
        "verify_evidence) of one run, or of the runs created in a period with the "
        "global chain from the period's start. Dates are ISO 8601 (UTC unless an "
        "offset is given); --to is exclusive."
    )

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, help="run number")
        parser.add_argument("--from", dest="start", help="period start (inclusive)")
        parser.add_argument("--to", dest="end", help="period end (exclusive)")
        parser.add_argument("--out", required=True, type=Path, help="FILE.zip")

    def handle(self, *args, run=None, start=None, end=None, out, **options):
        if (run is None) == (start is None and end is None) or (
            run is None and (start is None or end is None)
        ):
            raise CommandError("give --run NUMBER, or both --from DATE and --to DATE")
        directory = out.resolve().parent
        if not directory.is_dir():
            raise CommandError(f"--out: no directory {directory}")
        # written next to the target and renamed: never a half-written pack
        handle, temporary = tempfile.mkstemp(dir=directory, suffix=".zip.part")
        try:
            with os.fdopen(handle, "wb") as stream:
                if run is not None:
                    found = Run.objects.filter(number=run).first()
                    if found is None:
                        raise CommandError(f"--run: no run number {run}")
                    summary = run_pack(stream, found)
                else:
                    summary = period_pack(
                        stream, _instant(start, "from"), _instant(end, "to")
                    )
            os.replace(temporary, out)
        except (PackScopeError, SigningKeyError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        self.stdout.write(f"{out}: {summary}")
