"""Which e-mail triggers take a message: recipient address, sender allow list,
subject pattern (rules 3 to 5 of `runs.mail.intake`)."""

import logging
import re
from dataclasses import dataclass

from django.db.models.functions import Lower

from automations.models import Trigger, TriggerKind

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
        if entry.startswith("@") and sender.endswith(entry):
            return True
        if sender == entry:
            return True
    return False


def _subject_matches(pattern: str, subject: str, trigger: Trigger) -> bool:
    if not pattern:
        return True
    try:
        return re.search(pattern, subject) is not None
    except re.error as exc:
        log.error("e-mail trigger %s has a bad subject pattern: %s", trigger.pk, exc)
        return False


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
        elif not _subject_matches(trigger.subject_pattern, parsed.subject, trigger):
            refusal = Refusal(
                trigger,
                InboundReason.SUBJECT_MISMATCH,
                f"subject {parsed.subject!r} does not match "
                f"{trigger.subject_pattern!r} of {trigger.automation.slug}",
            )
        else:
            matched[trigger.automation_id] = trigger
            refused.pop(trigger.automation_id, None)
            continue
        refused.setdefault(trigger.automation_id, refusal)
    return list(matched.values()), list(refused.values())
