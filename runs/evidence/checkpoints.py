"""Signed checkpoints of chain heads: written by housekeeping, checked by
`verify_audit`.

Housekeeping signs the head (seq, hash) of every chain that moved since its
latest checkpoint (and of every chain whose latest checkpoint another key
signed), in one transaction, and when RUNS_CHECKPOINT_DIR is set appends each
checkpoint as a JSON line to `checkpoints.jsonl` there after the commit: a copy
outside the database that deleting checkpoint rows cannot reach.

A checkpoint vouches for a head as housekeeping saw it; it does not re-hash the
rows (that is verify_audit's work, and it stays off the engine's path).
"""

import json
import logging
import os
import uuid
from pathlib import Path

from django.db import transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from runs.conf import runs_settings

from ..ledger import GLOBAL_CHAIN
from ..models import AuditEvent, LedgerHead, Run, RunItem
from .models import LedgerCheckpoint
from .signing import SigningKeyError, sign, signing_key
from .verify import checkpoint_message, checkpoint_verify, key_id

log = logging.getLogger("runs.evidence")

CHECKPOINT_FILE = "checkpoints.jsonl"


def checkpoint_as_dict(checkpoint: LedgerCheckpoint) -> dict:
    """A checkpoint as packs and the checkpoint file carry it."""
    return {
        "chain": checkpoint.chain,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "created_at": _instant(checkpoint.created_at),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }


def _instant(value) -> str:
    return value.astimezone(timezone.get_fixed_timezone(0)).isoformat()


def _checkpoint(chain: str, run_id, seq: int, head_hash: str, key: str, now):
    checkpoint = LedgerCheckpoint(
        chain=chain, run_id=run_id, seq=seq, hash=head_hash, created_at=now, key_id=key
    )
    checkpoint.signature = sign(
        checkpoint_message(chain, seq, head_hash, _instant(now))
    )
    return checkpoint


def _latest(chain_filter):
    return (
        LedgerCheckpoint.objects.filter(chain_filter)
        .order_by("-seq", "-created_at")
        .values("seq", "key_id")[:1]
    )


def checkpoints_sign() -> int:
    """Sign the head of every chain that moved; returns how many were signed
    (-1: the signing key is misconfigured, which must not stop housekeeping;
    the system check runs.E301 names it)."""
    try:
        key = key_id(signing_key().public_key())
    except SigningKeyError:
        log.exception("ledger checkpoints not signed")
        return -1
    now = timezone.now()
    made = []
    head = LedgerHead.objects.filter(key=GLOBAL_CHAIN).first()
    if head is not None and head.seq:
        last = list(_latest(Q(chain=GLOBAL_CHAIN)))
        if not last or last[0]["seq"] < head.seq or last[0]["key_id"] != key:
            made.append(_checkpoint(GLOBAL_CHAIN, None, head.seq, head.hash, key, now))
    latest = _latest(Q(run=OuterRef("pk")))
    moved = (
        Run.objects.filter(ledger_seq__gt=0)
        .annotate(
            signed_seq=Coalesce(Subquery(latest.values("seq")), 0),
            signed_key=Subquery(latest.values("key_id")),
        )
        .filter(
            Q(ledger_seq__gt=F("signed_seq"))
            | Q(signed_key__isnull=True)
            | ~Q(signed_key=key)  # another key signed it: sign again with this one
        )
        .values_list("pk", "ledger_seq", "ledger_hash")
    )
    for run_id, seq, head_hash in moved.iterator(chunk_size=2000):
        made.append(_checkpoint(str(run_id), run_id, seq, head_hash, key, now))
    if not made:
        return 0
    with transaction.atomic():
        LedgerCheckpoint.objects.bulk_create(
            made, batch_size=500, ignore_conflicts=True
        )
        if runs_settings.CHECKPOINT_DIR:
            lines = [json.dumps(checkpoint_as_dict(c), sort_keys=True) for c in made]
            transaction.on_commit(lambda: _append(lines))
    return len(made)


def _append(lines: list[str]) -> None:
    directory = Path(runs_settings.CHECKPOINT_DIR)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / CHECKPOINT_FILE, "a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        log.exception("could not append checkpoints to %s", directory)


# -- verification --------------------------------------------------------------


def _row_hash(chain: str, run_id, seq: int) -> str | None:
    if run_id is None:
        rows = AuditEvent.objects.filter(chain=chain, seq=seq)
    else:
        found = (
            AuditEvent.objects.filter(chain=chain, seq=seq)
            .values_list("hash", flat=True)
            .first()
        )
        if found is not None:
            return found
        rows = RunItem.objects.filter(run_id=run_id, seq=seq)
    return rows.values_list("hash", flat=True).first()


def _head(chain: str, run_id):
    if run_id is None:
        head = LedgerHead.objects.filter(key=chain).first()
        return (head.seq, head.hash) if head else (0, "")
    return (
        Run.objects.filter(pk=run_id).values_list("ledger_seq", "ledger_hash").first()
    )


def _check(checkpoint: dict, run_id, public_key, where: str) -> str | None:
    chain, seq = checkpoint["chain"], int(checkpoint["seq"])
    name = f"chain {chain}: checkpoint at seq {seq} ({where})"
    if not checkpoint_verify(public_key, checkpoint):
        if checkpoint.get("key_id") != key_id(public_key):
            return f"{name}: signed by another key ({checkpoint.get('key_id')})"
        return f"{name}: the signature does not verify (forged or edited)"
    head = _head(chain, run_id)
    if head is None:
        return None  # the run is gone: verify_audit's missing-runs check speaks
    if head[0] < seq:
        return f"{name}: the chain ends at seq {head[0]}, before its signed head"
    if head[0] == seq and head[1] != checkpoint["hash"]:
        return f"{name}: the chain's head is not the signed head (chain rewritten)"
    if _row_hash(chain, run_id, seq) != checkpoint["hash"]:
        return f"{name}: the row at seq {seq} is not the signed one (chain rewritten)"
    return None


def checkpoint_problems():
    """Yield what is wrong between every chain and its latest checkpoint (in the
    database, and in the checkpoint file when RUNS_CHECKPOINT_DIR is set)."""
    try:
        public_key = signing_key().public_key()
    except SigningKeyError as exc:
        yield f"checkpoints cannot be checked: {exc}"
        return
    latest = LedgerCheckpoint.objects.filter(
        pk=Subquery(
            LedgerCheckpoint.objects.filter(chain=OuterRef("chain"))
            .order_by("-seq", "-created_at")
            .values("pk")[:1]
        )
    ).order_by("chain")
    in_database = {}
    for checkpoint in latest.iterator(chunk_size=2000):
        in_database[checkpoint.chain] = checkpoint.seq
        problem = _check(
            checkpoint_as_dict(checkpoint), checkpoint.run_id, public_key, "database"
        )
        if problem:
            yield problem
    yield from _file_problems(public_key, in_database)


def _file_problems(public_key, in_database: dict):
    if not runs_settings.CHECKPOINT_DIR:
        return
    path = Path(runs_settings.CHECKPOINT_DIR) / CHECKPOINT_FILE
    if not path.exists():
        return
    latest: dict[str, dict] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                checkpoint = json.loads(line)
                chain, seq = checkpoint["chain"], int(checkpoint["seq"])
            except (ValueError, KeyError, TypeError):
                yield f"{path} line {number}: not a checkpoint"
                continue
            if chain not in latest or seq >= int(latest[chain]["seq"]):
                latest[chain] = checkpoint
    run_ids = {
        str(pk): pk
        for pk in Run.objects.filter(
            pk__in=[c for c in latest if c != GLOBAL_CHAIN and _is_uuid(c)]
        ).values_list("pk", flat=True)
    }
    for chain, checkpoint in sorted(latest.items()):
        if chain != GLOBAL_CHAIN and chain not in run_ids:
            continue  # a deleted run (retention records it in the global chain)
        run_id = None if chain == GLOBAL_CHAIN else run_ids[chain]
        problem = _check(checkpoint, run_id, public_key, str(path))
        if problem:
            yield problem
        elif in_database.get(chain, -1) < int(checkpoint["seq"]):
            yield (
                f"chain {chain}: {path} holds a checkpoint at seq {checkpoint['seq']} "
                "that the database lacks (checkpoint rows were deleted)"
            )


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
