"""Verifying the ledger's hash chains (`manage.py verify_audit`): every row's
link and content recomputed in seq order, and each chain's head compared, so an
edited, deleted or inserted row is found. Writing the chains is `runs.ledger`."""

import heapq
from dataclasses import dataclass

from .ledger import GLOBAL_CHAIN, record_hash
from .models import AuditEvent, LedgerHead, Run, RunItem


@dataclass
class ChainProblem:
    chain: str
    seq: int
    model: str
    pk: object
    message: str

    def __str__(self):
        where = f"chain {self.chain}: seq {self.seq} ({self.model} {self.pk})"
        return f"{where}: {self.message}"


def _verify_rows(
    chain: str, rows, head_seq: int, head_hash: str
) -> ChainProblem | None:
    expected_seq, prev = 0, ""
    last = None
    for row in rows:
        expected_seq += 1
        name = row._meta.model_name
        if row.seq != expected_seq:
            what = (
                "missing row(s) before it"
                if row.seq > expected_seq
                else "duplicate seq"
            )
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
    iterators = [qs.iterator(chunk_size=2000) for qs in querysets]
    return heapq.merge(*iterators, key=lambda row: row.seq)


def verify_chain(run: Run | None) -> ChainProblem | None:
    if run is None:
        head = LedgerHead.objects.filter(key=GLOBAL_CHAIN).first()
        rows = AuditEvent.objects.filter(chain=GLOBAL_CHAIN).order_by("seq")
        return _verify_rows(
            GLOBAL_CHAIN,
            rows.iterator(),
            head.seq if head else 0,
            head.hash if head else "",
        )
    rows = _merged(
        AuditEvent.objects.filter(chain=str(run.pk)).order_by("seq"),
        RunItem.objects.filter(run=run).order_by("seq"),
    )
    return _verify_rows(str(run.pk), rows, run.ledger_seq, run.ledger_hash)


def verify_all():
    """Yield the first problem of every broken chain (the global one, then each
    run's)."""
    problem = verify_chain(None)
    if problem:
        yield problem
    for run in Run.objects.order_by("number").only("pk", "ledger_seq", "ledger_hash"):
        problem = verify_chain(run)
        if problem:
            yield problem
