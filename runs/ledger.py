"""The tamper-evident ledger: audit events and run items in hash chains.

Each run has its own chain (its audit events and run items share one sequence), so
workers of different runs never queue behind one lock; events that belong to no run
chain on the global head. Every row stores the hash of the row before it and a hash
over its own fields; the chain's head (seq, hash) is kept on the run or on a
LedgerHead row, so deleting the last rows is detected too.

Callers append inside their own transaction: the row lock on the head serialises
appenders of one chain (on SQLite the IMMEDIATE transaction already does).
"""

import datetime
import hashlib
import json
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .models import AuditEvent, LedgerHead, Run, RunItem, run_item_ledger_fields

GLOBAL_CHAIN = "global"


def _default(value):
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).isoformat()
    return str(value)


def record_hash(prev_hash: str, seq: int, fields: dict) -> str:
    body = json.dumps(
        {"prev": prev_hash, "seq": seq, **fields},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_default,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _chain(records, seq: int, prev: str) -> tuple[int, str]:
    for record in records:
        seq += 1
        record.seq = seq
        record.prev_hash = prev
        record.hash = prev = record_hash(prev, seq, record.ledger_fields())
    return seq, prev


def _chain_rows(rows: list[dict], seq: int, prev: str) -> tuple[int, str]:
    for row in rows:
        seq += 1
        row["seq"] = seq
        row["prev_hash"] = prev
        row["hash"] = prev = record_hash(prev, seq, run_item_ledger_fields(row))
    return seq, prev


def _actor_label(actor, label: str) -> str:
    if label:
        return label
    if actor is not None:
        return actor.get_username()
    return "system"


def audit_event(
    *,
    verb: str,
    obj=None,
    run: Run | None = None,
    actor=None,
    actor_label: str = "",
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> AuditEvent:
    """Build an unsaved AuditEvent; pass it to `append` to chain and save it."""
    target = obj if obj is not None else run
    return AuditEvent(
        run=run,
        chain=str(run.pk) if run is not None else GLOBAL_CHAIN,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=_actor_label(actor, actor_label),
        verb=verb,
        object_type=target._meta.label_lower if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        before=before or {},
        after=after or {},
        reason=reason,
        created_at=timezone.now(),
    )


def append(
    *,
    run: Run | None = None,
    events: list[AuditEvent] = (),
    run_items: list[RunItem] = (),
    run_item_rows: list[dict] = (),
    counters: dict | None = None,
) -> None:
    """Chain and save ledger rows for one run (or the global chain when run is None).

    `run_item_rows` are run items as dicts of field attnames (the engine's bulk
    path); they are chained after `run_items`. `counters` are extra field updates
    for the run row (F expressions allowed), written in the same UPDATE that moves
    the chain head.
    """
    if not events and not run_items and not run_item_rows and not counters:
        return
    with transaction.atomic():
        if run is None:
            if run_items or run_item_rows:
                raise ValueError("run items always belong to a run")
            head, _ = LedgerHead.objects.select_for_update().get_or_create(
                key=GLOBAL_CHAIN
            )
            seq, prev = _chain(events, head.seq, head.hash)
            AuditEvent.objects.bulk_create(events)
            LedgerHead.objects.filter(key=GLOBAL_CHAIN).update(seq=seq, hash=prev)
            return
        seq, prev = (
            Run.objects.select_for_update()
            .filter(pk=run.pk)
            .values_list("ledger_seq", "ledger_hash")
            .get()
        )
        # audit events first, then run items: the order is part of the chain
        seq, prev = _chain(events, seq, prev)
        seq, prev = _chain(run_items, seq, prev)
        seq, prev = _chain_rows(list(run_item_rows), seq, prev)
        if events:
            AuditEvent.objects.bulk_create(events)
        if run_items:
            RunItem.objects.bulk_create(run_items, batch_size=500)
        if run_item_rows:
            from .engine.bulk import insert_rows

            insert_rows(RunItem, list(run_item_rows))
        Run.objects.filter(pk=run.pk).update(
            ledger_seq=seq, ledger_hash=prev, **(counters or {})
        )
        run.ledger_seq, run.ledger_hash = seq, prev


@dataclass
class ChainProblem:
    chain: str
    seq: int
    model: str
    pk: object
    message: str

    def __str__(self):
        return f"chain {self.chain}: seq {self.seq} ({self.model} {self.pk}): {self.message}"


def _verify_rows(chain: str, rows, head_seq: int, head_hash: str) -> ChainProblem | None:
    expected_seq, prev = 0, ""
    last = None
    for row in rows:
        expected_seq += 1
        name = row._meta.model_name
        if row.seq != expected_seq:
            what = "missing row(s) before it" if row.seq > expected_seq else "duplicate seq"
            return ChainProblem(chain, row.seq, name, row.pk, what)
        if row.prev_hash != prev:
            return ChainProblem(
                chain, row.seq, name, row.pk, "prev_hash does not match the row before"
            )
        if record_hash(prev, row.seq, row.ledger_fields()) != row.hash:
            return ChainProblem(chain, row.seq, name, row.pk, "contents were edited")
        prev = row.hash
        last = row
    if expected_seq != head_seq or prev != head_hash:
        return ChainProblem(
            chain,
            expected_seq + 1 if expected_seq < head_seq else expected_seq,
            last._meta.model_name if last is not None else "head",
            last.pk if last is not None else None,
            f"chain ends at seq {expected_seq} but its head says {head_seq}: "
            "rows were deleted or appended outside the ledger",
        )
    return None


def _merged(*querysets):
    """Merge querysets that are each ordered by seq into one seq-ordered stream."""
    import heapq

    iterators = [qs.iterator(chunk_size=2000) for qs in querysets]
    return heapq.merge(*iterators, key=lambda row: row.seq)


def verify_chain(run: Run | None) -> ChainProblem | None:
    if run is None:
        head = LedgerHead.objects.filter(key=GLOBAL_CHAIN).first()
        rows = AuditEvent.objects.filter(chain=GLOBAL_CHAIN).order_by("seq")
        return _verify_rows(
            GLOBAL_CHAIN, rows.iterator(), head.seq if head else 0, head.hash if head else ""
        )
    rows = _merged(
        AuditEvent.objects.filter(chain=str(run.pk)).order_by("seq"),
        RunItem.objects.filter(run=run).order_by("seq"),
    )
    return _verify_rows(str(run.pk), rows, run.ledger_seq, run.ledger_hash)


def verify_all():
    """Yield the first problem of every broken chain (the global one, then each run's)."""
    problem = verify_chain(None)
    if problem:
        yield problem
    for run in Run.objects.order_by("number").only("pk", "ledger_seq", "ledger_hash"):
        problem = verify_chain(run)
        if problem:
            yield problem
