"""Which e-mail triggers take a message: recipient address, sender allow list,
subject pattern (rules 3 to 5 of `runs.mail.intake`)."""

import logging
from dataclasses import dataclass

import regex
from django.db.models.functions import Lower

from automations.models import Trigger, TriggerKind

from ..conf import runs_settings
from .models import InboundReason
from .parsing import ParsedMessage

log = logging.getLogger("runs.mail")


@dataclass
class Refusal:
    trigger: Trigger | None
    reason: str
    detail: str


def _sender_allowed(sender: str, allowed: list[str]) -> bool:
    if not allowed:
        return True
    for entry in allowed:
        entry = entry.strip().lower()
        if "@" not in entry:
            # stored before import refused it (issue 13): a domain is all it can be
            entry = "@" + entry
        if entry.startswith("@") and sender.endswith(entry):
            return True
        if sender == entry:
            return True
    return False


class SubjectTimeout(Exception):
    pass


def _subject_matches(pattern: str, subject: str, trigger: Trigger) -> bool:
    """`regex.search` with a timeout: a pattern that backtracks catastrophically
    (`^(a+)+$`) on a sender's subject would hold the intake (and every IMAP poll
    after it) for minutes; past RUNS_EMAIL_SUBJECT_TIMEOUT_SECONDS it is a
    mismatch (raises SubjectTimeout)."""
    if not pattern:
        return True
    timeout = runs_settings.EMAIL_SUBJECT_TIMEOUT_SECONDS
    try:
        return regex.search(pattern, subject, timeout=timeout) is not None
    except regex.error as exc:
        log.error("e-mail trigger %s has a bad subject pattern: %s", trigger.pk, exc)
        return False
    except TimeoutError:
        log.error(
            "e-mail trigger %s: subject pattern %r timed out after %ss",
            trigger.pk,
            pattern,
            timeout,
        )
        raise SubjectTimeout from None


@dataclass
class _SubjectResult:
    matched: bool
    detail: str = ""


def _subject_match(trigger: Trigger, subject: str) -> _SubjectResult:
    pattern = trigger.subject_pattern
    try:
        if _subject_matches(pattern, subject, trigger):
            return _SubjectResult(True)
        why = "does not match"
    except SubjectTimeout:
        why = "timed out matching"
    return _SubjectResult(
        False,
        f"subject {subject[:200]!r} {why} {pattern!r} of {trigger.automation.slug}",
    )


def triggers_match(
    parsed: ParsedMessage,
) -> tuple[list[Trigger], list[Refusal]]:
    """The e-mail triggers that take this message (one per automation), and the
    refusals of those whose address matched but whose rules did not."""
    candidates = (
        Trigger.objects.filter(kind=TriggerKind.EMAIL, enabled=True)
        .annotate(address_lower=Lower("address"))
        .filter(address_lower__in=parsed.recipients)
        .select_related("automation")
        .order_by("automation_id", "id")
    )
    matched: dict[int, Trigger] = {}
    refused: dict[int, Refusal] = {}
    for trigger in candidates:
        if trigger.automation_id in matched:
            continue
        if not _sender_allowed(parsed.sender, trigger.senders):
            refusal = Refusal(
                trigger,
                InboundReason.SENDER_NOT_ALLOWED,
                f"{parsed.sender} may not start {trigger.automation.slug} "
                f"(allowed: {', '.join(trigger.senders)})",
            )
        elif not (subject := _subject_match(trigger, parsed.subject)).matched:
            refusal = Refusal(trigger, InboundReason.SUBJECT_MISMATCH, subject.detail)
        else:
            matched[trigger.automation_id] = trigger
            refused.pop(trigger.automation_id, None)
            continue
        refused.setdefault(trigger.automation_id, refusal)
    return list(matched.values()), list(refused.values())
