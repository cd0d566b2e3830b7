"""The IMAP poller: take new messages of one mailbox folder through intake.

Nothing is deleted or moved. A message is marked once it has an outcome:
- accepted or duplicate: `\\Seen` and the keyword `$RunsProcessed`;
- rejected: `\\Flagged` and the keyword `$RunsRejected` (it stays for a person);
- an error on our side (database down): left as it was, tried at the next poll.
New messages are those with neither keyword. A server that does not allow
keywords (no `\\*` in PERMANENTFLAGS) gets `\\Seen` (processed) and
`\\Seen \\Flagged` (rejected), and new messages are the unseen ones.

Polling twice, or the same message delivered twice, starts nothing new: a message
marked is not fetched again, and one fetched again (a crash before marking, a
second copy) is a duplicate by its Message-ID.
"""

import logging
from dataclasses import dataclass, field

from imapclient import IMAPClient

from ..conf import runs_settings
from .intake import email_receive
from .models import InboundOutcome, InboundSource

log = logging.getLogger("runs.mail")

PROCESSED = b"$RunsProcessed"
REJECTED = b"$RunsRejected"
SEEN = b"\\Seen"
FLAGGED = b"\\Flagged"


class MailboxNotConfigured(Exception):
    pass


@dataclass
class FetchReport:
    fetched: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    errors: int = 0
    runs: list = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"fetched {self.fetched}: {self.accepted} accepted, "
            f"{self.duplicate} duplicate, {self.rejected} rejected, "
            f"{self.errors} error(s)"
        )


def mailbox_settings() -> dict:
    host = runs_settings.IMAP_HOST
    if not host:
        raise MailboxNotConfigured("RUNS_IMAP_HOST is not set: no mailbox to poll")
    ssl = bool(runs_settings.IMAP_SSL)
    return {
        "host": host,
        "port": int(runs_settings.IMAP_PORT or (993 if ssl else 143)),
        "ssl": ssl,
        "user": runs_settings.IMAP_USER,
        "password": runs_settings.IMAP_PASSWORD,
        "folder": runs_settings.IMAP_FOLDER or "INBOX",
        "timeout": runs_settings.IMAP_TIMEOUT_SECONDS,
    }


def _marks(select_info: dict):
    """(search criteria for new mail, flags when processed, flags when rejected)."""
    if b"\\*" in select_info.get(b"PERMANENTFLAGS", ()):
        return (
            ["NOT", "KEYWORD", PROCESSED, "NOT", "KEYWORD", REJECTED],
            [SEEN, PROCESSED],
            [FLAGGED, REJECTED],
        )
    return (["UNSEEN"], [SEEN], [SEEN, FLAGGED])


def mailbox_fetch(*, limit: int | None = None) -> FetchReport:
    """Poll the configured mailbox once; see the module for the marks."""
    cfg = mailbox_settings()
    report = FetchReport()
    max_bytes = runs_settings.EMAIL_MAX_MESSAGE_BYTES
    with IMAPClient(
        cfg["host"], port=cfg["port"], ssl=cfg["ssl"], timeout=cfg["timeout"]
    ) as client:
        client.login(cfg["user"], cfg["password"])
        new, processed, rejected = _marks(client.select_folder(cfg["folder"]))
        uids = sorted(client.search(new))
        if limit is not None:
            uids = uids[:limit]
        sizes = client.fetch(uids, ["RFC822.SIZE"]) if uids else {}
        for uid in uids:
            size = sizes.get(uid, {}).get(b"RFC822.SIZE", 0)
            try:
                if size > max_bytes:
                    # too large to download: the headers are enough to reject it
                    data = client.fetch([uid], ["BODY.PEEK[HEADER]"])[uid]
                    raw = data[b"BODY[HEADER]"]
                else:
                    raw = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
                result = email_receive(raw=raw, source=InboundSource.IMAP, size=size)
            except Exception:
                log.exception("IMAP message uid %s could not be taken in", uid)
                report.errors += 1
                continue
            report.fetched += 1
            if result.outcome == InboundOutcome.REJECTED:
                client.add_flags([uid], rejected)
                report.rejected += 1
            else:
                client.add_flags([uid], processed)
                if result.outcome == InboundOutcome.ACCEPTED:
                    report.accepted += 1
                    report.runs += result.runs
                else:
                    report.duplicate += 1
    if report.fetched or report.errors:
        log.info("IMAP %s@%s: %s", cfg["user"], cfg["host"], report.summary())
    return report
