"""`manage.py receive_email < message.eml`: the e-mail trigger for an MTA pipe.

Exit status (sysexits.h, as sendmail and postfix `pipe` read it):
  0   accepted (a run started), or a duplicate of a message already taken
  65  EX_DATAERR      not a parseable message, message or attachment too large
  67  EX_NOUSER       no e-mail trigger takes this recipient (or subject)
  69  EX_UNAVAILABLE  the automation cannot run (draft only, retired)
  75  EX_TEMPFAIL     the product could not store the message now; the MTA retries
  77  EX_NOPERM       the sender is not on the trigger's allow list
The reason is written on stderr (the MTA puts it in the bounce).
"""

import logging
import sys

from django.core.management.base import BaseCommand, CommandError

from runs.conf import runs_settings
from runs.mail.intake import EX_TEMPFAIL, email_receive
from runs.mail.models import InboundSource

log = logging.getLogger("runs.mail")


class Command(BaseCommand):
    help = (
        "Read one RFC 5322 message on standard input and start a run of each "
        "automation whose e-mail trigger takes it. Exit 0 when accepted; 65, 67, "
        "69 or 77 with the reason on stderr when rejected; 75 to make the MTA retry."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument(
            "--recipient",
            action="append",
            default=[],
            help="envelope recipient from the MTA (e.g. postfix ${recipient}); "
            "matched like To/Cc (repeatable)",
        )

    def handle(self, *args, recipient=(), **options):
        stream = options.get("stdin") or sys.stdin.buffer
        limit = runs_settings.EMAIL_MAX_MESSAGE_BYTES
        raw = stream.read(limit + 1)
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="surrogateescape")
        size = len(raw)
        if size > limit:
            # Read the rest so the MTA sees the pipe drained, counting its size.
            while chunk := stream.read(1 << 20):
                size += len(chunk)
        try:
            result = email_receive(
                raw=raw,
                source=InboundSource.STDIN,
                envelope_recipients=recipient,
                size=size,
            )
        except Exception as exc:
            # Database down, disk full, a bug: the MTA keeps the message and
            # delivers it again later (a message already taken is a duplicate).
            log.exception("e-mail intake failed; the MTA will retry")
            raise CommandError(
                f"temporary failure, try again later: {exc}", returncode=EX_TEMPFAIL
            ) from exc
        if result.exit_code:
            raise CommandError(result.summary(), returncode=result.exit_code)
        self.stdout.write(result.summary())
