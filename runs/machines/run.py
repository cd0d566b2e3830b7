"""Run state machine."""

from django.db import transaction
from django.utils import timezone

from .. import ledger
from ..models import Run
from ..outbox import run_move_outbox
from ..signals import run_state_changed
from ..states import RUN_FINAL, RUN_TRANSITIONS, IllegalTransition, RunState


def run_move(
    run: Run,
    to: str,
    *,
    actor=None,
    actor_label: str = "",
    verb: str = "",
    reason: str = "",
    allowed_from: frozenset[str] | None = None,
    updates: dict | None = None,
    details: dict | None = None,
) -> str:
    """Move `run` to state `to`, record the AuditEvent, and return the state it left.

    `allowed_from` narrows the machine's sources for this call (a service may accept
    fewer states than the machine allows, never more). `updates` are other fields
    written in the same UPDATE; `details` go into the event's `after`.
    """
    allowed = RUN_TRANSITIONS[to]
    if allowed_from is not None:
        allowed = allowed & frozenset(allowed_from)
    now = timezone.now()
    fields = dict(updates or {})
    if to == RunState.RUNNING:
        fields.setdefault("started_at", run.started_at or now)
        fields["completed_at"] = None
    if to in RUN_FINAL or to == RunState.UNRESOLVED:
        fields.setdefault("completed_at", now)
    with transaction.atomic():
        # Lock the row first (PostgreSQL) so the state we record as `before` is the
        # one we replace; the conditional UPDATE is what decides on every backend.
        current = ledger.run_lock(run)
        if current not in allowed:
            raise IllegalTransition(run, current, to)
        changed = Run.objects.filter(pk=run.pk, state=current).update(
            state=to, **fields
        )
        if not changed:
            raise IllegalTransition(run, current, to)
        event = ledger.audit_event(
            verb=verb or f"run.{to}",
            run=run,
            actor=actor,
            actor_label=actor_label,
            before={"state": current},
            after={"state": to, **(details or {})},
            reason=reason,
        )
        ledger.append(run=run, events=[event])
        run_move_outbox(run, before=current, after=to)
        transaction.on_commit(
            lambda: run_state_changed.send_robust(
                sender=Run,
                run_id=run.pk,
                before=current,
                after=to,
                actor_label=event.actor_label,
            )
        )
    run.state = to
    for name, value in fields.items():
        if not hasattr(value, "resolve_expression"):
            setattr(run, name, value)
    return current
