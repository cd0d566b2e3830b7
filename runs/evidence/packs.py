"""Evidence packs: a run's (or a period's) ledger as a signed zip an auditor
verifies offline with `python -m runs.evidence.verify` (docs/evidence.md).

The pack holds `audit_trail.csv` (one row per run item and audit event, with its
chain, seq, previous hash, content digest, hash and the canonical content the
digest is taken over, then each content value in a column of its own),
`chains.json` (each chain's head as exported), `checkpoints.json` (the chains'
signed checkpoints), `public_key.pem`, `README.txt`, and `manifest.json` (every
file's SHA-256) with its Ed25519 signature `manifest.sig`.

Each chain's head is read before its rows and rows past it are left out, so a
run the engine is still writing gives a consistent prefix of its chain. Memory
stays flat: rows stream from the database into the zip in chunks.
"""

import csv
import datetime
import hashlib
import heapq
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass, field

from django.db.models import Min
from django.http import FileResponse
from django.utils import timezone

from ..ledger import GLOBAL_CHAIN, _canonical
from ..models import AuditEvent, LedgerHead, Run, RunItem, run_item_ledger_fields
from .checkpoints import checkpoint_as_dict
from .models import LedgerCheckpoint
from .signing import public_key_pem, sign, signing_key_id
from .verify import (
    CHAINS,
    CHECKPOINTS,
    COLUMNS,
    FORMAT,
    MANIFEST,
    PUBLIC_KEY,
    README,
    SIGNATURE,
    TRAIL,
    VALUE_COLUMNS,
    canonical,
    cell,
)

CHUNK = 2000
# the web doors (admin, API) build packs of at most this many runs; the
# command has no limit
MAX_WEB_PACK_RUNS = 1000

_ITEM_VALUES = (
    "seq",
    "prev_hash",
    "hash",
    "run_id",
    "work_item_id",
    "step_id",
    "action",
    "subject",
    "parameters",
    "attempt",
    "idempotency_key",
    "outcome",
    "result_ref",
    "failure_type",
    "failure_cause",
    "started_at",
    "finished_at",
)


class PackScopeError(ValueError):
    """The pack asked for cannot be made (unknown run, empty or reversed period)."""


@dataclass
class _ChainOut:
    chain: str
    run: Run | None
    head_seq: int
    head_hash: str
    first_seq: int = 1
    rows: int = 0
    first_prev_hash: str = ""


@dataclass
class PackSummary:
    scope: dict
    chains: list = field(default_factory=list)
    rows: int = 0

    def __str__(self):
        return (
            f"evidence pack of {self.scope}: {len(self.chains)} chain(s), "
            f"{self.rows} ledger row(s)"
        )


def _instant(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat()


def _row(chain: str, record: str, seq: int, prev: str, stored_hash: str, fields: dict):
    content = _canonical(fields)
    values = json.loads(content)
    return [
        chain,
        seq,
        record,
        prev,
        hashlib.sha256(content.encode()).hexdigest(),
        stored_hash,
        content,
        *(cell(values.get(name)) for name in VALUE_COLUMNS),
    ]


def _run_rows(chain: _ChainOut):
    run = chain.run
    events = (
        (event.seq, "audit_event", event)
        for event in AuditEvent.objects.filter(
            chain=chain.chain, seq__lte=chain.head_seq
        )
        .order_by("seq")
        .iterator(chunk_size=CHUNK)
    )
    items = (
        (item["seq"], "run_item", item)
        for item in RunItem.objects.filter(run=run, seq__lte=chain.head_seq)
        .order_by("seq")
        .values(*_ITEM_VALUES)
        .iterator(chunk_size=CHUNK)
    )
    for seq, record, row in heapq.merge(events, items, key=lambda t: t[0]):
        if record == "audit_event":
            yield _row(
                chain.chain, record, seq, row.prev_hash, row.hash, row.ledger_fields()
            )
        else:
            yield _row(
                chain.chain,
                record,
                seq,
                row["prev_hash"],
                row["hash"],
                run_item_ledger_fields(row),
            )


def _global_rows(chain: _ChainOut):
    rows = AuditEvent.objects.filter(
        chain=GLOBAL_CHAIN, seq__gte=chain.first_seq, seq__lte=chain.head_seq
    ).order_by("seq")
    for event in rows.iterator(chunk_size=CHUNK):
        yield _row(
            GLOBAL_CHAIN,
            "audit_event",
            event.seq,
            event.prev_hash,
            event.hash,
            event.ledger_fields(),
        )


class _HashingWriter:
    """Writes text lines to a zip member as UTF-8 while hashing them."""

    def __init__(self, stream):
        self.stream, self.sha = stream, hashlib.sha256()
        self.buffer = io.StringIO()
        self.csv = csv.writer(self.buffer)

    def writerow(self, row):
        self.csv.writerow(row)
        if self.buffer.tell() > 1 << 16:
            self.flush()

    def flush(self):
        data = self.buffer.getvalue().encode()
        self.sha.update(data)
        self.stream.write(data)
        self.buffer.seek(0)
        self.buffer.truncate()


def _chains_for(runs, since) -> list[_ChainOut]:
    chains = []
    for run in runs.select_related("automation", "version").order_by("number"):
        chains.append(_ChainOut(str(run.pk), run, run.ledger_seq, run.ledger_hash))
    if since is not None:
        head = LedgerHead.objects.filter(key=GLOBAL_CHAIN).first()
        seq, hash_ = (head.seq, head.hash) if head else (0, "")
        first = AuditEvent.objects.filter(
            chain=GLOBAL_CHAIN, created_at__gte=since, seq__lte=seq
        ).aggregate(first=Min("seq"))["first"]
        # the global chain from the period's first event to its head, so every row
        # of it in the pack is anchored to the head (and to its checkpoints)
        chains.append(
            _ChainOut(GLOBAL_CHAIN, None, seq, hash_, first_seq=first or seq + 1)
        )
    return chains


def evidence_pack_write(out, *, runs, since=None, scope: dict) -> PackSummary:
    """Write the evidence pack of `runs` (a queryset) to the binary file `out`;
    with `since`, the global chain's events from then on are in it too."""
    chains = _chains_for(runs, since)
    summary = PackSummary(scope=scope)
    digests = {}
    created_at = _instant(timezone.now())
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as pack:
        with pack.open(TRAIL, "w", force_zip64=True) as stream:
            writer = _HashingWriter(stream)
            writer.writerow(COLUMNS)
            for chain in chains:
                rows = _global_rows(chain) if chain.run is None else _run_rows(chain)
                for row in rows:
                    if not chain.rows:
                        chain.first_prev_hash = row[3]
                    chain.rows += 1
                    writer.writerow(row)
            writer.flush()
            digests[TRAIL] = writer.sha.hexdigest()
        summary.rows = sum(chain.rows for chain in chains)
        key = signing_key_id()
        names = [chain.chain for chain in chains]
        checkpoints = [
            checkpoint_as_dict(c)
            for c in LedgerCheckpoint.objects.filter(
                chain__in=names, key_id=key
            ).order_by("chain", "seq")
        ]
        heads = {chain.chain: chain.head_seq for chain in chains}
        checkpoints = [c for c in checkpoints if c["seq"] <= heads[c["chain"]]]
        files = {
            CHAINS: _json(
                {
                    "format": FORMAT,
                    "created_at": created_at,
                    "scope": scope,
                    "chains": [_chain_entry(chain) for chain in chains],
                }
            ),
            CHECKPOINTS: _json({"format": FORMAT, "checkpoints": checkpoints}),
            PUBLIC_KEY: public_key_pem(),
            README: readme(scope=scope, key=key, created_at=created_at).encode(),
        }
        for name, data in files.items():
            pack.writestr(name, data)
            digests[name] = hashlib.sha256(data).hexdigest()
        manifest = canonical(
            {
                "format": FORMAT,
                "created_at": created_at,
                "key_id": key,
                "files": dict(sorted(digests.items())),
            }
        ).encode()
        pack.writestr(MANIFEST, manifest)
        pack.writestr(SIGNATURE, sign(manifest))
    summary.chains = chains
    return summary


def _json(value) -> bytes:
    return (
        json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    ).encode()


def _chain_entry(chain: _ChainOut) -> dict:
    entry = {
        "chain": chain.chain,
        "head_seq": chain.head_seq,
        "head_hash": chain.head_hash,
        "first_seq": chain.first_seq,
        "first_prev_hash": chain.first_prev_hash,
        "rows": chain.rows,
    }
    if chain.run is not None:
        entry.update(
            run_id=str(chain.run.pk),
            run_number=chain.run.number,
            automation=chain.run.automation.slug,
            version=chain.run.version.number,
            state=chain.run.state,
        )
    return entry


def run_pack(out, run: Run) -> PackSummary:
    return evidence_pack_write(
        out,
        runs=Run.objects.filter(pk=run.pk),
        scope={"run": run.number, "run_id": str(run.pk)},
    )


def period_pack(out, start, end, *, runs=None, with_global=True) -> PackSummary:
    """Runs created in [start, end) (or `runs`, e.g. a report's), with the global
    chain from `start` to its head unless `with_global` is false (a pack of one
    workspace's runs: configuration events are of every workspace)."""
    if start >= end:
        raise PackScopeError("the period's start must be before its end")
    if runs is None:
        runs = Run.objects.filter(created_at__gte=start, created_at__lt=end)
    return evidence_pack_write(
        out,
        runs=runs,
        since=start if with_global else None,
        scope={"from": _instant(start), "to": _instant(end)},
    )


def pack_response(write, filename: str) -> FileResponse:
    """A download of the pack `write(out)` writes: kept in memory while small,
    in a temporary file past 8 MiB; FileResponse closes it when sent."""
    out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    write(out)
    out.seek(0)
    return FileResponse(
        out, as_attachment=True, filename=filename, content_type="application/zip"
    )


def readme(*, scope: dict, key: str, created_at: str) -> str:
    return README_TEXT.format(
        scope=json.dumps(scope, sort_keys=True),
        key=key,
        created_at=created_at,
        columns=", ".join(COLUMNS),
        values=", ".join(VALUE_COLUMNS),
    )


README_TEXT = f"""\
Runs evidence pack ({FORMAT})
===================================

Exported {{created_at}} for {{scope}}.
Signed with the Ed25519 key whose fingerprint (SHA-256 of the raw 32-byte public
key) is {{key}}. Compare it with the one the operator publishes
(`manage.py ledger_public_key --fingerprint`) before trusting this pack.

Verify it
---------
    python -m runs.evidence.verify PACK.zip [--public-key trusted.pem]
    manage.py verify_evidence PACK.zip       (same check; needs no database)
The verifier needs Python and the `cryptography` package only. It exits 0 for an
intact pack, non-zero naming the first bad file or CSV row otherwise. Every rule
below can also be checked by hand or with any other tool.

Files
-----
{TRAIL}        one row per ledger record (run items and audit events)
{CHAINS}          each chain in the pack: head_seq, head_hash (as exported),
                     first_seq and first_prev_hash (where the pack's rows begin),
                     the run's number, automation and version
{CHECKPOINTS}     signed chain heads written earlier by housekeeping
{PUBLIC_KEY}      the public key of the signatures
{MANIFEST}        SHA-256 (hex) of every other file, in canonical JSON
{SIGNATURE}         base64 Ed25519 signature of the bytes of {MANIFEST}

The rules
---------
1. {SIGNATURE} verifies over the exact bytes of {MANIFEST} with {PUBLIC_KEY};
   every file's SHA-256 is the one {MANIFEST} lists; no other file is in the pack.
2. {TRAIL} (UTF-8, RFC 4180 quoting) has the columns
   {{columns}}.
   Rows of one chain are consecutive and in seq order.
3. Per row: content_digest = SHA-256 (hex) of the UTF-8 bytes of the `content`
   cell; `content` is canonical JSON (keys sorted, separators "," and ":", no
   spaces, non-ASCII characters as they are, timestamps as ISO 8601 in UTC);
   hash = SHA-256 (hex) of the UTF-8 text  prev_hash + "|" + seq + "|" +
   content_digest  (seq in decimal).
4. In each chain, seq counts up by one from first_seq; the first row of a chain
   that starts at seq 1 has an empty prev_hash; every other row's prev_hash is
   the hash of the row before it; the last row's seq and hash are the chain's
   head_seq and head_hash in {CHAINS}. A deleted, inserted, reordered or edited
   row breaks one of these.
5. The columns after `content` ({{values}}) repeat the content's value of the
   same name: empty for null or absent, text as it is (text a spreadsheet would
   run as a formula, starting with = + - @ tab or carriage return and not a plain
   number, gets a leading '), numbers, true/false, objects and lists in canonical
   JSON. `record` is the content's `kind`; `chain` is the content's `chain` (audit
   events) or `run` (run items).
6. Each checkpoint's signature verifies, with {PUBLIC_KEY}, over the UTF-8 text
   "runs-ledger-checkpoint/1\\n" + chain + "\\n" + seq + "\\n" + hash + "\\n" +
   created_at + "\\n"; the row of that chain at that seq has that hash. A chain
   rewritten together with its head after a checkpoint fails here.

Secrets never enter the ledger: fields holding them (webhook secrets, passwords)
show as "[redacted]" in audit events.
"""
