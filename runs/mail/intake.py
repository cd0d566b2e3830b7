"""E-mail intake: one message in, one run per matching automation out, or a reason.

Rules, in order (the first that refuses decides the reason):
1. The message must be at most RUNS_EMAIL_MAX_MESSAGE_BYTES, its header at most
   RUNS_EMAIL_MAX_HEADER_BYTES, with at most RUNS_EMAIL_MAX_ADDRESSES addresses and
   RUNS_EMAIL_MAX_PARTS MIME parts, all counted on the bytes before the parse
   (`too_large`); and it must parse fully (`unparseable`).
2. An enabled e-mail trigger's address must be among the recipients (To, Cc,
   Delivered-To, X-Original-To, and the envelope recipient the MTA passes)
   (`no_automation`).
3. The From address must be on the trigger's sender allow list when it has one
   (exact address, or `@domain` for a whole domain) (`sender_not_allowed`).
4. The subject must match the trigger's pattern (`re.search`) when it has one
   (`subject_mismatch`).
5. No attachment may exceed RUNS_EMAIL_MAX_ATTACHMENT_BYTES
   (`attachment_too_large`).
6. The automation must be able to run: published, not retired (`not_runnable`).

A matched message starts one run per automation (several triggers of one
automation matching still start one run), whose single work item carries the
message (see `ParsedMessage.payload`) and its attachments as files. The same
Message-ID for the same automation never starts a second run: it is recorded as a
`duplicate` of the first. Every outcome is an InboundMessage row and a log line.
"""

import logging
from dataclasses import dataclass, field

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from automations.models import Trigger, TriggerKind

from ..conf import runs_settings
from ..files import content_sha256
from ..models import Run, WorkItemFile
from ..services.errors import RunsError
from ..services.starting import run_start
from .matching import Refusal, triggers_match
from .models import InboundMessage, InboundOutcome, InboundReason
from .parsing import (
    Envelope,
    ParsedMessage,
    UnparseableMessage,
    bounds_problem,
    envelope_read,
    message_parse,
)

log = logging.getLogger("runs.mail")

# sysexits.h codes, as sendmail and postfix `pipe` read a delivery agent's status:
# 0 delivered; 65 bounced, bad data; 67 bounced, no such user; 69 bounced,
# unavailable; 77 bounced, permission denied; 75 deferred, the MTA tries again.
EX_OK = 0
EX_DATAERR = 65
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_NOPERM = 77

EXIT_CODES = {
    InboundReason.UNPARSEABLE: EX_DATAERR,
    InboundReason.TOO_LARGE: EX_DATAERR,
    InboundReason.ATTACHMENT_TOO_LARGE: EX_DATAERR,
    InboundReason.NO_AUTOMATION: EX_NOUSER,
    InboundReason.SUBJECT_MISMATCH: EX_NOUSER,
    InboundReason.SENDER_NOT_ALLOWED: EX_NOPERM,
    InboundReason.NOT_RUNNABLE: EX_UNAVAILABLE,
}
# When several automations refuse one message, the reason reported is the one
# closest to acceptance (the sender would most want to know about).
_REASON_RANK = [
    InboundReason.UNPARSEABLE,
    InboundReason.TOO_LARGE,
    InboundReason.NOT_RUNNABLE,
    InboundReason.ATTACHMENT_TOO_LARGE,
    InboundReason.SENDER_NOT_ALLOWED,
    InboundReason.SUBJECT_MISMATCH,
    InboundReason.NO_AUTOMATION,
]


@dataclass
class IntakeResult:
    """What became of one message: the runs it started and every record written."""

    outcome: str
    reason: str = ""
    detail: str = ""
    message_id: str = ""
    runs: list[Run] = field(default_factory=list)
    records: list[InboundMessage] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.outcome == InboundOutcome.REJECTED:
            return EXIT_CODES[self.reason]
        return EX_OK

    def summary(self) -> str:
        if self.outcome == InboundOutcome.REJECTED:
            return f"rejected ({self.reason}): {self.detail}"
        parts = []
        for record in self.records:
            if record.outcome == InboundOutcome.ACCEPTED:
                parts.append(f"run #{record.run.number} of {record.automation.slug}")
            elif record.outcome == InboundOutcome.DUPLICATE:
                number = f"#{record.run.number}" if record.run else "(gone)"
                parts.append(f"{record.automation.slug}: duplicate of run {number}")
        return f"{self.outcome} {self.message_id}: " + "; ".join(parts)


def _record(
    parsed: ParsedMessage | Envelope,
    *,
    source: str,
    size: int,
    outcome: str,
    reason: str = "",
    detail: str = "",
    trigger: Trigger | None = None,
    run: Run | None = None,
) -> InboundMessage:
    return InboundMessage.objects.create(
        automation=trigger.automation if trigger else None,
        trigger=trigger,
        message_id=parsed.message_id,
        sender=parsed.sender,
        recipients=parsed.recipients,
        subject=parsed.subject[:500],
        size=size,
        source=source,
        outcome=outcome,
        reason=reason,
        detail=detail,
        run=run,
    )


def _reject(parsed, *, source: str, size: int, refusals: list[Refusal]) -> IntakeResult:
    records = [
        _record(
            parsed,
            source=source,
            size=size,
            outcome=InboundOutcome.REJECTED,
            reason=r.reason,
            detail=r.detail,
            trigger=r.trigger,
        )
        for r in refusals
    ]
    first = min(refusals, key=lambda r: _REASON_RANK.index(r.reason))
    log.warning(
        "e-mail %s from %s rejected (%s): %s",
        parsed.message_id or "(no id)",
        parsed.sender or "(unknown)",
        first.reason,
        first.detail,
    )
    return IntakeResult(
        outcome=InboundOutcome.REJECTED,
        reason=first.reason,
        detail=first.detail,
        message_id=parsed.message_id,
        records=records,
    )


def _duplicate_of(trigger: Trigger, message_id: str) -> InboundMessage | None:
    return (
        InboundMessage.objects.select_related("run")
        .filter(
            automation=trigger.automation,
            message_id=message_id,
            outcome=InboundOutcome.ACCEPTED,
        )
        .first()
    )


def _record_duplicate(parsed, first, *, trigger, source) -> InboundMessage:
    log.info(
        "e-mail %s already started run %s of %s: no new run",
        parsed.message_id,
        first.run.number if first.run else "(gone)",
        trigger.automation.slug,
    )
    return _record(
        parsed,
        source=source,
        size=parsed.size,
        outcome=InboundOutcome.DUPLICATE,
        trigger=trigger,
        run=first.run,
    )


def _start(parsed: ParsedMessage, *, trigger: Trigger, source: str):
    """Start the run of one automation for one message, atomically with its claim
    and files; returns an InboundMessage (accepted or duplicate) or a Refusal."""
    first = _duplicate_of(trigger, parsed.message_id)
    if first is not None:
        return _record_duplicate(parsed, first, trigger=trigger, source=source)
    stored: list[tuple] = []
    try:
        with transaction.atomic(durable=True):
            # The claim goes first: a concurrent delivery of the same message
            # blocks on (or fails) the unique constraint, and nothing below it is
            # written twice.
            claim = _record(
                parsed,
                source=source,
                size=parsed.size,
                outcome=InboundOutcome.ACCEPTED,
                trigger=trigger,
            )
            run = run_start(
                automation=trigger.automation,
                inputs=[parsed.payload()],
                trigger_kind=TriggerKind.EMAIL,
                trigger=trigger,
                actor_label=f"e-mail from {parsed.sender}"[:254],
            )
            # The run is handed to the engine only on commit, so no worker sees
            # its item before the files are attached.
            item = run.work_items.get()
            for attachment in parsed.attachments:
                row = WorkItemFile(
                    work_item=item,
                    name=attachment.name,
                    size=attachment.size,
                    content_type=attachment.content_type[:200],
                    sha256=content_sha256(attachment.data),
                )
                row.file.save(attachment.name, ContentFile(attachment.data), save=False)
                stored.append((row.file.storage, row.file.name))
                row.save()
            claim.run = run
            claim.save(update_fields=["run"])
    except IntegrityError:
        _files_delete(stored)
        first = _duplicate_of(trigger, parsed.message_id)
        if first is None:
            raise
        return _record_duplicate(parsed, first, trigger=trigger, source=source)
    except RunsError as exc:
        _files_delete(stored)
        return Refusal(trigger, InboundReason.NOT_RUNNABLE, str(exc))
    except BaseException:
        _files_delete(stored)
        raise
    log.info(
        "e-mail %s from %s started run #%s of %s (%d file(s))",
        parsed.message_id,
        parsed.sender,
        run.number,
        trigger.automation.slug,
        len(stored),
    )
    return claim


def _files_delete(stored) -> None:
    """Remove files written by a transaction that rolled back."""
    for storage, name in stored:
        try:
            storage.delete(name)
        except Exception:
            log.exception("could not remove %s after a rollback", name)


def email_receive(
    *, raw: bytes, source: str, envelope_recipients=(), size: int | None = None
) -> IntakeResult:
    """Take one message (its bytes) through the e-mail trigger; see the module.

    `size` is the message's real size when `raw` holds only its headers (an IMAP
    message too large to download), so that it is rejected as too large.
    Database errors propagate: the caller leaves the message to be tried again.
    """
    size = len(raw) if size is None else size
    limit = runs_settings.EMAIL_MAX_MESSAGE_BYTES
    if size > limit:
        envelope = envelope_read(raw)
        return _reject(
            envelope,
            source=source,
            size=size,
            refusals=[
                Refusal(
                    None,
                    InboundReason.TOO_LARGE,
                    f"the message is {size} bytes, over the limit of {limit}",
                )
            ],
        )
    header_limit = runs_settings.EMAIL_MAX_HEADER_BYTES
    problem = bounds_problem(
        raw,
        max_header_bytes=header_limit,
        max_addresses=runs_settings.EMAIL_MAX_ADDRESSES,
        max_parts=runs_settings.EMAIL_MAX_PARTS,
    )
    if problem:
        envelope = envelope_read(raw, max_bytes=header_limit)
        envelope.recipients = sorted({r.lower() for r in envelope_recipients})[
            : runs_settings.EMAIL_MAX_ADDRESSES
        ]
        return _reject(
            envelope,
            source=source,
            size=size,
            refusals=[Refusal(None, InboundReason.TOO_LARGE, problem)],
        )
    try:
        parsed = message_parse(raw, envelope_recipients=envelope_recipients)
    except UnparseableMessage as exc:
        envelope = envelope_read(raw)
        envelope.recipients = sorted(
            set(envelope.recipients) | {r.lower() for r in envelope_recipients}
        )
        return _reject(
            envelope,
            source=source,
            size=size,
            refusals=[Refusal(None, InboundReason.UNPARSEABLE, str(exc))],
        )

    matched, refusals = triggers_match(parsed)
    if not matched:
        refusals = refusals or [
            Refusal(
                None,
                InboundReason.NO_AUTOMATION,
                "no e-mail trigger for " + ", ".join(parsed.recipients),
            )
        ]
        return _reject(parsed, source=source, size=size, refusals=refusals)

    attachment_limit = runs_settings.EMAIL_MAX_ATTACHMENT_BYTES
    too_big = [a for a in parsed.attachments if a.size > attachment_limit]
    if too_big:
        detail = "; ".join(
            f"{a.name} is {a.size} bytes, over the limit of {attachment_limit}"
            for a in too_big
        )
        return _reject(
            parsed,
            source=source,
            size=size,
            refusals=[
                Refusal(t, InboundReason.ATTACHMENT_TOO_LARGE, detail) for t in matched
            ],
        )

    results = [_start(parsed, trigger=t, source=source) for t in matched]
    taken = [r for r in results if isinstance(r, InboundMessage)]
    refusals += [r for r in results if isinstance(r, Refusal)]
    if not taken:
        return _reject(parsed, source=source, size=size, refusals=refusals)
    records = taken + [
        _record(
            parsed,
            source=source,
            size=size,
            outcome=InboundOutcome.REJECTED,
            reason=r.reason,
            detail=r.detail,
            trigger=r.trigger,
        )
        for r in refusals
    ]
    accepted = [r for r in taken if r.outcome == InboundOutcome.ACCEPTED]
    return IntakeResult(
        outcome=InboundOutcome.ACCEPTED if accepted else InboundOutcome.DUPLICATE,
        message_id=parsed.message_id,
        runs=[r.run for r in accepted],
        records=records,
    )
