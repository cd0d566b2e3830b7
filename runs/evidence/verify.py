"""Verify an evidence pack offline: `python -m runs.evidence.verify PACK.zip`.

This module imports nothing but the standard library and `cryptography`: no
database, no Django settings. It is also where the pack's format is defined
(file names, CSV columns, the cell rule, the signed messages), so the exporter
(`runs.evidence.packs`) and this verifier cannot drift apart. The rules are
written out for auditors in the pack's README.txt and docs/evidence.md.

Exit status 0: the pack is intact. 1: the first problem found is printed first
(file, CSV line, chain and seq), the others after it. 2: the pack cannot be read.
"""

import argparse
import base64
import csv
import hashlib
import io
import json
import re
import sys
import zipfile

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "runs-evidence/1"
README = "README.txt"
TRAIL = "audit_trail.csv"
CHAINS = "chains.json"
CHECKPOINTS = "checkpoints.json"
PUBLIC_KEY = "public_key.pem"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SIGNED_FILES = (README, TRAIL, CHAINS, CHECKPOINTS, PUBLIC_KEY)

# the content keys shown in their own columns, after the chain columns
VALUE_COLUMNS = (
    "run",
    "work_item",
    "step",
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
    "actor_label",
    "verb",
    "object_type",
    "object_id",
    "before",
    "after",
    "reason",
    "created_at",
)
CHAIN_COLUMNS = ("chain", "seq", "record", "prev_hash", "content_digest", "hash")
COLUMNS = (*CHAIN_COLUMNS, "content", *VALUE_COLUMNS)
RECORDS = ("run_item", "audit_event")

CHECKPOINT_CONTEXT = "runs-ledger-checkpoint/1"
MAX_MEMBER_BYTES = 4 * 1024**3  # a zip bomb is refused, not inflated


def link_hash(prev_hash: str, seq: int, digest: str) -> str:
    """A ledger row's hash: sha256 of `prev_hash|seq|content_digest` (UTF-8)."""
    return hashlib.sha256(f"{prev_hash}|{seq}|{digest}".encode()).hexdigest()


def canonical(value) -> str:
    """JSON with sorted keys, no spaces, non-ASCII as is (the ledger's rule)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def cell(value) -> str:
    """A content value as its CSV cell: null is empty; text as is, but text a
    spreadsheet would run as a formula gets a leading `'` (as runs.csv.csv_safe);
    numbers, true/false, objects and lists in canonical JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        if value.startswith(_FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(value):
            return "'" + value
        return value
    return canonical(value)


def key_id(public_key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the raw 32-byte public key: the fingerprint
    `manage.py ledger_public_key --fingerprint` prints."""
    raw = public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()


def checkpoint_message(chain: str, seq: int, head_hash: str, created_at: str) -> bytes:
    """What a checkpoint's signature covers."""
    return f"{CHECKPOINT_CONTEXT}\n{chain}\n{seq}\n{head_hash}\n{created_at}\n".encode()


def checkpoint_verify(public_key, checkpoint: dict) -> bool:
    try:
        public_key.verify(
            base64.b64decode(checkpoint["signature"], validate=True),
            checkpoint_message(
                checkpoint["chain"],
                int(checkpoint["seq"]),
                checkpoint["hash"],
                checkpoint["created_at"],
            ),
        )
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
    return True


class PackError(Exception):
    """The pack cannot be read at all."""


def _read(pack: zipfile.ZipFile, name: str) -> bytes:
    info = pack.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise PackError(f"{name}: larger than {MAX_MEMBER_BYTES} bytes")
    return pack.read(name)


def _digest(pack: zipfile.ZipFile, name: str) -> str:
    sha = hashlib.sha256()
    with pack.open(name) as stream:
        while block := stream.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


def _load_public_key(data: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError("not an Ed25519 public key")
    return key


class _Chain:
    def __init__(self, name: str):
        self.name = name
        self.seq = None
        self.hash = None
        self.hashes = {}  # seq -> hash at the checkpoints' seqs
        self.first = None
        self.first_prev = None


def _check_row(line: int, row: dict, chains: dict, wanted: dict) -> str | None:
    where = f"{TRAIL} line {line} (chain {row['chain']} seq {row['seq']})"
    if row["record"] not in RECORDS:
        return f"{where}: unknown record type {row['record']!r}"
    try:
        seq = int(row["seq"])
    except ValueError:
        return f"{where}: seq is not a number"
    chain = chains.setdefault(row["chain"], _Chain(row["chain"]))
    if chain.seq is not None and seq != chain.seq + 1:
        return (
            f"{where}: expected seq {chain.seq + 1} of the chain here "
            "(a row was deleted, inserted or moved)"
        )
    if chain.hash is not None and row["prev_hash"] != chain.hash:
        return f"{where}: prev_hash is not the hash of the row before"
    if chain.seq is None and seq == 1 and row["prev_hash"] != "":
        return f"{where}: the first row of a chain has an empty prev_hash"
    content = row["content"]
    if hashlib.sha256(content.encode()).hexdigest() != row["content_digest"]:
        return f"{where}: content_digest is not the SHA-256 of content"
    if link_hash(row["prev_hash"], seq, row["content_digest"]) != row["hash"]:
        return f"{where}: hash is not sha256(prev_hash|seq|content_digest)"
    try:
        fields = json.loads(content)
    except ValueError:
        return f"{where}: content is not JSON"
    if not isinstance(fields, dict) or canonical(fields) != content:
        return f"{where}: content is not canonical JSON"
    if fields.get("kind") != row["record"]:
        return f"{where}: record does not match the content's kind"
    owner = fields.get("chain") if row["record"] == "audit_event" else fields.get("run")
    if owner != row["chain"]:
        return f"{where}: the content belongs to chain {owner}"
    for column in VALUE_COLUMNS:
        if row[column] != cell(fields.get(column)):
            return f"{where}: cell {column} does not match the content"
    extra = set(fields) - set(VALUE_COLUMNS) - {"kind", "chain"}
    if extra:
        return f"{where}: content has keys without a column: {sorted(extra)}"
    if chain.seq is None:
        chain.first, chain.first_prev = seq, row["prev_hash"]
    chain.seq, chain.hash = seq, row["hash"]
    if seq in wanted.get(chain.name, ()):
        chain.hashes[seq] = row["hash"]  # only where a checkpoint will look
    return None


def verify_pack(path, public_key: bytes | None = None) -> list[str]:
    """Every problem found in the pack at `path`, the first one first; empty
    when it is intact. `public_key` (PEM): the key the auditor trusts; the pack's
    own key must be it."""
    try:
        pack = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise PackError(f"not a readable zip file: {exc}") from None
    with pack:
        names = set(pack.namelist())
        missing = [n for n in (*SIGNED_FILES, MANIFEST, SIGNATURE) if n not in names]
        if missing:
            return [f"{name}: missing from the pack" for name in missing]
        problems = []
        try:
            key = _load_public_key(_read(pack, PUBLIC_KEY))
        except (TypeError, ValueError) as exc:
            return [f"{PUBLIC_KEY}: cannot be read: {exc}"]
        if public_key is not None:
            trusted = _load_public_key(public_key)
            if key_id(trusted) != key_id(key):
                problems.append(
                    f"{PUBLIC_KEY}: the pack's key {key_id(key)} is not the trusted "
                    f"key {key_id(trusted)}"
                )
        problems += _verify_contents(pack, key)  # rows first: they say the most
        manifest_bytes = _read(pack, MANIFEST)
        try:
            key.verify(
                base64.b64decode(_read(pack, SIGNATURE), validate=True), manifest_bytes
            )
        except (InvalidSignature, ValueError):
            problems.append(
                f"{SIGNATURE}: not a signature of {MANIFEST} by the key in {PUBLIC_KEY}"
            )
        try:
            manifest = json.loads(manifest_bytes)
            files = manifest["files"]
            if manifest.get("format") != FORMAT or not isinstance(files, dict):
                raise ValueError(f"format is not {FORMAT}")
        except (ValueError, KeyError, TypeError) as exc:
            return [*problems, f"{MANIFEST}: cannot be read: {exc}"]
        for name in sorted(names - set(files) - {MANIFEST, SIGNATURE}):
            problems.append(f"{name}: in the pack but not in the manifest")
        for name in SIGNED_FILES:
            if name not in files:
                problems.append(f"{name}: not listed in the manifest")
            elif _digest(pack, name) != files[name]:
                problems.append(f"{name}: its SHA-256 is not the manifest's")
    return problems


def _verify_contents(pack, key) -> list[str]:
    try:
        heads = json.loads(_read(pack, CHAINS))["chains"]
        checkpoints = json.loads(_read(pack, CHECKPOINTS))["checkpoints"]
        wanted: dict[str, set] = {}
        for checkpoint in checkpoints:
            wanted.setdefault(checkpoint["chain"], set()).add(int(checkpoint["seq"]))
        declared = {head["chain"]: head for head in heads}
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{CHAINS} or {CHECKPOINTS}: cannot be read: {exc}"]
    problems = []
    chains: dict[str, _Chain] = {}
    csv.field_size_limit(MAX_MEMBER_BYTES // 4)  # a row may carry big parameters
    with pack.open(TRAIL) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.reader(text)
        try:
            header = next(reader, None)
            if tuple(header or ()) != COLUMNS:
                return [f"{TRAIL} line 1: the header is not the pack format's columns"]
            for row in reader:
                line = reader.line_num
                if len(row) != len(COLUMNS):
                    problems.append(
                        f"{TRAIL} line {line}: {len(row)} cells, not {len(COLUMNS)}"
                    )
                    break
                problem = _check_row(line, dict(zip(COLUMNS, row)), chains, wanted)
                if problem:
                    problems.append(problem)
                    break  # the rows after it cannot be judged against a broken chain
        except (csv.Error, UnicodeDecodeError) as exc:
            return [f"{TRAIL} line {reader.line_num}: not readable CSV: {exc}"]
    if problems:
        return problems
    try:
        problems += _verify_heads(chains, declared)
        problems += _verify_checkpoints(chains, checkpoints, key)
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(f"{CHAINS} or {CHECKPOINTS}: malformed: {exc}")
    return problems


def _verify_heads(chains: dict, declared: dict) -> list[str]:
    problems = []
    for name in sorted(set(chains) - set(declared)):
        problems.append(f"{TRAIL}: chain {name} has rows but no head in {CHAINS}")
    for name, head in declared.items():
        chain = chains.get(name)
        if chain is None and head.get("rows") == 0:
            continue  # a chain with no row in the pack's scope (e.g. a quiet period)
        seen = (chain.seq, chain.hash) if chain else (0, "")
        first = int(head.get("first_seq", 1))
        if chain and (
            chain.first != first
            or (first > 1 and chain.first_prev != head.get("first_prev_hash"))
        ):
            problems.append(
                f"{TRAIL}: chain {name} does not start at seq {first} as {CHAINS} says"
            )
        if seen != (head["head_seq"], head["head_hash"]):
            problems.append(
                f"{CHAINS}: chain {name} ends at seq {seen[0]} in {TRAIL} "
                f"but its head is seq {head['head_seq']} {head['head_hash']}"
            )
    return problems


def _verify_checkpoints(chains: dict, checkpoints: list, key) -> list[str]:
    problems = []
    for checkpoint in checkpoints:
        chain_name, seq_text = checkpoint.get("chain"), checkpoint.get("seq")
        name = f"{CHECKPOINTS}: chain {chain_name} seq {seq_text}"
        if not checkpoint_verify(key, checkpoint):
            problems.append(f"{name}: the signature does not verify")
            continue
        chain = chains.get(checkpoint["chain"])
        if chain is None:
            continue  # a chain this pack does not hold
        seq = int(checkpoint["seq"])
        if seq > chain.seq:
            problems.append(f"{name}: signed, but the chain in {TRAIL} ends before it")
        elif seq in chain.hashes and chain.hashes[seq] != checkpoint["hash"]:
            problems.append(
                f"{name}: the row at this seq does not have the signed hash"
            )
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runs.evidence.verify",
        description="Verify a Runs evidence pack (no database needed).",
    )
    parser.add_argument("pack", help="the evidence pack (.zip)")
    parser.add_argument(
        "--public-key", help="PEM file of the key you trust (from ledger_public_key)"
    )
    args = parser.parse_args(argv)
    trusted = None
    if args.public_key:
        try:
            with open(args.public_key, "rb") as handle:
                trusted = handle.read()
        except OSError as exc:
            print(f"cannot read {args.public_key}: {exc}", file=sys.stderr)
            return 2
    try:
        problems = verify_pack(args.pack, trusted)
    except (PackError, OSError, ValueError, TypeError) as exc:
        print(f"BROKEN {args.pack}: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"BROKEN {problem}", file=sys.stderr)
    if problems:
        return 1
    with zipfile.ZipFile(args.pack) as pack:
        fingerprint = key_id(_load_public_key(pack.read(PUBLIC_KEY)))
    print(f"evidence pack intact; signed by key {fingerprint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
