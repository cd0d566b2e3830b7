"""Retention: archive finished runs after N days, delete archived runs after M more.

Settings (each read from the environment variable of the same name; unset = off):
`RUNS_ARCHIVE_AFTER_DAYS`: a run in a final state whose `completed_at` is older
than this is archived, through `run_archive` (one audit event in its chain each).
`RUNS_DELETE_ARCHIVED_AFTER_DAYS`: a run archived longer than this (counted from
its last `run.archived` audit event) is deleted with everything it owns.

A deleted run's chain goes with it, so `verify_audit` cannot check it any more;
what stays is a `run.deleted` event in the global chain, appended in the same
transaction as the delete, that records the run's id, number, automation, version,
state and its final ledger head (seq and hash). Because run numbers are gapless
(`next_number` advances in the transaction that creates the run), `verify_audit`
also checks that every number missing from the runs table has such an event
(`missing_runs`): a run deleted behind the ledger's back is reported.
"""

import datetime
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from runs.conf import runs_settings

from . import ledger
from .models import AuditEvent, Run, RunItem, Sequence
from .services.operator import run_archive
from .states import RUN_FINAL

DELETED_VERB = "run.deleted"
BATCH = 500


@dataclass
class RetentionResult:
    archive_after_days: int | None
    delete_after_days: int | None
    dry_run: bool
    archived: list = field(default_factory=list)  # run numbers
    deleted: list = field(default_factory=list)

    def summary(self) -> str:
        verb = "would archive" if self.dry_run else "archived"
        gone = "would delete" if self.dry_run else "deleted"
        parts = []
        parts.append(
            f"{verb} {len(self.archived)} run(s)"
            if self.archive_after_days is not None
            else "archiving off (RUNS_ARCHIVE_AFTER_DAYS unset)"
        )
        parts.append(
            f"{gone} {len(self.deleted)} run(s)"
            if self.delete_after_days is not None
            else "deletion off (RUNS_DELETE_ARCHIVED_AFTER_DAYS unset)"
        )
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return {"archived": len(self.archived), "deleted": len(self.deleted)}


def runs_to_archive(now, days: int):
    cutoff = now - datetime.timedelta(days=days)
    return Run.objects.filter(
        archived=False, state__in=RUN_FINAL, completed_at__lt=cutoff
    ).order_by("number")


def runs_to_delete(now, days: int):
    cutoff = now - datetime.timedelta(days=days)
    archived_at = (
        AuditEvent.objects.filter(run=OuterRef("pk"), verb="run.archived")
        .order_by()
        .values("run")
        .annotate(at=Max("created_at"))
        .values("at")[:1]
    )
    return (
        Run.objects.filter(archived=True)
        .annotate(archived_at=Subquery(archived_at))
        .filter(archived_at__lt=cutoff)
        .order_by("number")
    )


def run_delete(
    run: Run, *, actor=None, actor_label: str = "retention", reason: str = ""
) -> bool:
    """Delete one archived run and record it in the global chain (one transaction).
    Returns False, deleting nothing, when the run is gone or no longer archived."""
    with transaction.atomic():
        row = (
            Run.objects.select_for_update()
            .filter(pk=run.pk, archived=True)
            .select_related("automation", "version")
            .first()
        )
        if row is None:
            return False
        facts = {
            "run_id": str(row.pk),
            "number": row.number,
            "automation": row.automation.slug,
            "version": row.version.number,
            "state": row.state,
            "created_at": row.created_at.isoformat(),
            "completed_at": row.completed_at.isoformat() if row.completed_at else None,
            "run_items": RunItem.objects.filter(run=row).count(),
            "ledger_seq": row.ledger_seq,
            "ledger_hash": row.ledger_hash,
        }
        event = ledger.audit_event(
            verb=DELETED_VERB,
            obj=row,
            actor=actor,
            actor_label=actor_label,
            before=facts,
            after={"deleted": True},
            reason=reason,
        )
        ledger.append(events=[event])  # global chain: outlives the run
        Run.objects.filter(pk=row.pk).delete()
    return True


def retention_apply(
    *,
    now=None,
    dry_run: bool = False,
    archive_after_days: int | None = None,
    delete_after_days: int | None = None,
) -> RetentionResult:
    """Archive, then delete, as the settings (or the arguments) say."""
    now = now or timezone.now()
    if archive_after_days is None:
        archive_after_days = runs_settings.ARCHIVE_AFTER_DAYS
    if delete_after_days is None:
        delete_after_days = runs_settings.DELETE_ARCHIVED_AFTER_DAYS
    result = RetentionResult(archive_after_days, delete_after_days, dry_run)
    if archive_after_days is not None:
        reason = f"retention: finished more than {archive_after_days} day(s) ago"
        for run in runs_to_archive(now, archive_after_days).iterator(chunk_size=BATCH):
            if not dry_run:
                run_archive(run, reason=reason)
            result.archived.append(run.number)
    if delete_after_days is not None:
        reason = f"retention: archived more than {delete_after_days} day(s) ago"
        candidates = list(
            runs_to_delete(now, delete_after_days).values_list("pk", "number")
        )
        for pk, number in candidates:
            if dry_run or run_delete(Run(pk=pk, number=number), reason=reason):
                result.deleted.append(number)
    return result


def missing_runs(limit: int = 100) -> list[int]:
    """Run numbers that were issued but have neither a run nor a `run.deleted`
    event in the global chain (at most `limit` of them). Streams the numbers."""
    issued = Sequence.objects.filter(name="run").values_list("value", flat=True).first()
    if not issued:
        return []
    deleted = {
        event_before.get("number")
        for event_before in AuditEvent.objects.filter(
            chain=ledger.GLOBAL_CHAIN, verb=DELETED_VERB
        )
        .values_list("before", flat=True)
        .iterator(chunk_size=5000)
    }
    missing = []
    expected = 1
    numbers = Run.objects.order_by("number").values_list("number", flat=True)
    for number in numbers.iterator(chunk_size=5000):
        while expected < number:
            if expected not in deleted:
                missing.append(expected)
                if len(missing) >= limit:
                    return missing
            expected += 1
        expected = max(expected, number + 1)
    while expected <= issued:
        if expected not in deleted:
            missing.append(expected)
            if len(missing) >= limit:
                return missing
        expected += 1
    return missing
