"""`manage.py fetch_mail`: poll the IMAP mailbox once (RUNS_IMAP_* settings).

Exit status: 0 when the poll ran (rejected mail is flagged in the mailbox, not an
error of the poll); 1 when the mailbox is not configured or cannot be reached.
`--schedule` instead creates (or removes) the django-q2 schedules.
"""

from django.core.management.base import BaseCommand, CommandError
from imapclient.exceptions import IMAPClientError

from runs.mail.imap import MailboxNotConfigured, mailbox_fetch
from runs.mail.tasks import mail_schedules_sync


class Command(BaseCommand):
    help = (
        "Poll the IMAP mailbox once and start a run per new message; mark what was "
        "processed and flag what was rejected. --schedule: sync the django-q2 "
        "schedules (poll every RUNS_IMAP_POLL_MINUTES, notifications) and exit."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="take at most N messages in this poll",
        )
        parser.add_argument(
            "--schedule",
            action="store_true",
            help="create or update the django-q2 schedules and exit",
        )

    def handle(self, *args, limit=None, schedule=False, **options):
        if schedule:
            report = mail_schedules_sync()
            self.stdout.write(", ".join(f"{k}: {v}" for k, v in report.items()))
            return
        try:
            report = mailbox_fetch(limit=limit)
        except MailboxNotConfigured as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:  # connection refused, TLS, timeouts
            raise CommandError(f"cannot reach the IMAP server: {exc}") from exc
        except IMAPClientError as exc:  # login refused, no such folder
            raise CommandError(f"IMAP error: {exc}") from exc
        self.stdout.write(report.summary())
