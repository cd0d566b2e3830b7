"""Evidence packs: exported from the ledger, verified offline; every tampering of
the tamper matrix fails verify_evidence, an intact pack passes."""

import base64
import csv
import io
import os
import subprocess
import sys
import zipfile

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError

from runs.engine import run_until_idle
from runs.evidence import verify as v
from runs.evidence.checkpoints import checkpoints_sign
from runs.models import AuditEvent, RunItem
from runs.services import run_archive, run_start


@pytest.fixture
def run(automation):
    run = run_start(
        automation=automation("builtin.echo", "builtin.echo"),
        inputs=[{"subject": "=cmd|' /C calc'!A0"}, {"subject": "b"}, {"subject": "ü"}],
    )
    run_until_idle(run)
    run_archive(run, actor=None, reason="filed")
    run.refresh_from_db()
    return run


def export(tmp_path, *args, name="pack.zip"):
    out = tmp_path / name
    call_command("export_evidence", *args, "--out", str(out), stdout=io.StringIO())
    return out


def verify_evidence(path, *extra):
    err = io.StringIO()
    try:
        call_command(
            "verify_evidence", str(path), *extra, stdout=io.StringIO(), stderr=err
        )
    except CommandError as exc:
        return False, err.getvalue() + str(exc)
    return True, ""


def rewrite(path, name, change, out=None):
    """A copy of the pack at `path` with member `name` replaced by change(bytes)."""
    out = out or path.with_name("tampered.zip")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info.filename, change(data) if info.filename == name else data)
    return out


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def csv_bytes(rows) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


def edit_rows(change):
    return lambda data: csv_bytes(change(csv_rows(data)))


@pytest.fixture
def pack(run, tmp_path):
    checkpoints_sign()
    return export(tmp_path, "--run", str(run.number))


def test_a_pack_holds_the_whole_chain_and_verifies(run, pack):
    ok, text = verify_evidence(pack)
    assert ok, text
    with zipfile.ZipFile(pack) as z:
        assert set(z.namelist()) == {*v.SIGNED_FILES, v.MANIFEST, v.SIGNATURE}
        rows = csv_rows(z.read(v.TRAIL))
        readme = z.read(v.README).decode()
    header, body = rows[0], rows[1:]
    assert tuple(header) == v.COLUMNS
    column = {name: i for i, name in enumerate(header)}
    items = RunItem.objects.filter(run=run).count()
    events = AuditEvent.objects.filter(run=run).count()
    assert len(body) == items + events == run.ledger_seq
    assert [int(r[column["seq"]]) for r in body] == list(range(1, run.ledger_seq + 1))
    assert {r[column["record"]] for r in body} == {"run_item", "audit_event"}
    assert body[-1][column["hash"]] == run.ledger_hash
    archived = [r for r in body if r[column["verb"]] == "run.archived"]
    assert archived and archived[0][column["reason"]] == "filed"
    # a formula-like subject is neutralised in its column, exact in the content
    formula = [r for r in body if r[column["subject"]].startswith("'=")]
    assert formula and '"=cmd' in formula[0][column["content"]]
    assert "sha256(" in readme.lower() or "SHA-256" in readme


def test_the_verifier_needs_no_django(pack):
    env = {k: val for k, val in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    probe = (
        "import sys, runs.evidence.verify as v; code = v.main([sys.argv[1]]); "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django'; "
        "sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(pack)],
        env=env,
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "intact" in done.stdout
    bad = rewrite(pack, v.TRAIL, edit_rows(lambda rows: [*rows[:2], *rows[3:]]))
    done = subprocess.run(
        [sys.executable, "-I", "-m", "runs.evidence.verify", str(bad)],
        env=env,
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    assert done.returncode == 1
    assert "audit_trail.csv line 3" in done.stderr.splitlines()[0]


def _cell_edited(rows):
    column = rows[0].index("outcome")
    row = next(r for r in rows[1:] if r[column] == "succeeded")
    row[column] = "failed"
    return rows


def _content_edited(rows):
    """The content and its digest edited together: the hash still catches it."""
    import hashlib

    column = rows[0].index("content")
    row = next(r for r in rows[1:] if r[rows[0].index("record")] == "run_item")
    assert '"attempt":1' in row[column]
    row[column] = row[column].replace('"attempt":1', '"attempt":2')
    row[rows[0].index("attempt")] = "2"
    row[rows[0].index("content_digest")] = hashlib.sha256(
        row[column].encode()
    ).hexdigest()
    return rows


TAMPERING = {
    "a cell edited": (_cell_edited, "cell outcome does not match the content"),
    "content and digest edited": (_content_edited, "hash is not sha256"),
    "a row deleted": (lambda rows: [*rows[:3], *rows[4:]], "expected seq 3"),
    "rows reordered": (
        lambda rows: [rows[0], rows[1], rows[3], rows[2], *rows[4:]],
        "expected seq 2",
    ),
    "a row inserted": (lambda rows: [*rows[:3], rows[2], *rows[3:]], "expected seq 3"),
    "the last row dropped": (lambda rows: rows[:-1], "ends at seq"),
}


@pytest.mark.parametrize("case", TAMPERING)
def test_tampered_rows_fail(pack, case):
    change, message = TAMPERING[case]
    ok, text = verify_evidence(rewrite(pack, v.TRAIL, edit_rows(change)))
    assert not ok
    first = text.splitlines()[0]
    assert message in first, text
    assert "audit_trail.csv" in first


def test_a_swapped_file_fails(run, pack, tmp_path, automation):
    other = run_start(automation=automation("builtin.echo"), inputs=[{"x": 1}])
    run_until_idle(other)
    other_pack = export(tmp_path, "--run", str(other.number), name="other.zip")
    with zipfile.ZipFile(other_pack) as z:
        foreign = z.read(v.CHAINS)
    ok, text = verify_evidence(rewrite(pack, v.CHAINS, lambda _: foreign))
    assert not ok and "chains.json" in text.splitlines()[0]
    with zipfile.ZipFile(other_pack) as z:
        foreign_trail = z.read(v.TRAIL)
    ok, text = verify_evidence(rewrite(pack, v.TRAIL, lambda _: foreign_trail))
    assert not ok and "audit_trail.csv" in text


def test_a_manifest_re_signed_with_another_key_fails(pack, tmp_path):
    forger = Ed25519PrivateKey.generate()

    def resign(path, out):
        with zipfile.ZipFile(path) as z:
            manifest = z.read(v.MANIFEST)
        signature = base64.b64encode(forger.sign(manifest))
        return rewrite(path, v.SIGNATURE, lambda _: signature, out=out)

    ok, text = verify_evidence(resign(pack, tmp_path / "resigned.zip"))
    assert not ok and "manifest.sig" in text.splitlines()[0]

    # the forger swaps the public key too (and fixes its digest in the manifest):
    # the checkpoints signed by the real key no longer verify
    import hashlib
    import json

    from cryptography.hazmat.primitives import serialization

    pem = forger.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    swapped = rewrite(pack, v.PUBLIC_KEY, lambda _: pem, out=tmp_path / "key.zip")

    def fix(data):
        manifest = json.loads(data)
        manifest["files"][v.PUBLIC_KEY] = hashlib.sha256(pem).hexdigest()
        return v.canonical(manifest).encode()

    fixed = rewrite(swapped, v.MANIFEST, fix, out=tmp_path / "fixed.zip")
    ok, text = verify_evidence(resign(fixed, tmp_path / "forged.zip"))
    assert not ok and "checkpoints.json" in text and "signature does not verify" in text


def test_a_trusted_key_pins_the_pack(pack, tmp_path, settings):
    pem = tmp_path / "trusted.pem"
    out = io.StringIO()
    call_command("ledger_public_key", stdout=out)
    pem.write_text(out.getvalue())
    assert verify_evidence(pack, "--public-key", str(pem))[0]
    other = Ed25519PrivateKey.generate().public_key()
    from cryptography.hazmat.primitives import serialization

    pem.write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    ok, text = verify_evidence(pack, "--public-key", str(pem))
    assert not ok and "not the trusted key" in text


def test_an_extra_file_fails(pack, tmp_path):
    out = tmp_path / "extra.zip"
    rewrite(pack, v.README, lambda data: data, out=out)
    with zipfile.ZipFile(out, "a") as z:
        z.writestr("notes.txt", "nothing to see")
    ok, text = verify_evidence(out)
    assert not ok and "notes.txt: in the pack but not in the manifest" in text


def test_a_row_edited_in_the_database_shows_in_the_pack(run, tmp_path):
    item = RunItem.objects.filter(run=run).order_by("seq").first()
    RunItem.objects.filter(pk=item.pk).update(subject="someone-else")
    ok, text = verify_evidence(export(tmp_path, "--run", str(run.number)))
    assert not ok and f"seq {item.seq}" in text and "hash is not" in text


def test_a_period_pack_holds_the_runs_and_the_configuration_changes(
    run, tmp_path, automation
):
    day = run.created_at.date().isoformat()
    nxt = (run.created_at.date() + __import__("datetime").timedelta(days=1)).isoformat()
    pack = export(tmp_path, "--from", day, "--to", nxt)
    ok, text = verify_evidence(pack)
    assert ok, text
    with zipfile.ZipFile(pack) as z:
        rows = csv_rows(z.read(v.TRAIL))
    column = {name: i for i, name in enumerate(rows[0])}
    chains = {r[column["chain"]] for r in rows[1:]}
    assert chains == {str(run.pk), "global"}
    verbs = {r[column["verb"]] for r in rows[1:] if r[column["chain"]] == "global"}
    assert {"automation.created", "version.created", "step.created"} <= verbs


def test_export_evidence_refuses_bad_arguments(db, tmp_path):
    for args in (
        [],
        ["--run", "1", "--from", "2026-01-01", "--to", "2026-02-01"],
        ["--from", "2026-01-01"],
        ["--from", "yesterday", "--to", "2026-01-01"],
        ["--from", "2026-02-01", "--to", "2026-01-01"],
        ["--run", "999"],
    ):
        with pytest.raises(CommandError):
            call_command("export_evidence", *args, "--out", str(tmp_path / "x.zip"))
        assert not list(tmp_path.iterdir()), args  # nothing half-written


def test_verify_evidence_refuses_what_is_not_a_pack(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CommandError, match="not a readable zip"):
        call_command("verify_evidence", str(junk))


def test_the_verifier_cell_rule_is_the_csv_rule():
    from runs.csv import csv_safe
    from runs.ledger import link_hash

    for text in ["=1+1", "+3.5", "-12", "@x", "\tx", "plain", "", "-", "1e5"]:
        assert v.cell(text) == csv_safe(text)
    assert v.link_hash("a", 3, "b") == link_hash("a", 3, "b")


def test_verify_evidence_command_needs_no_database(pack):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/nothing"}
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "verify_evidence", str(pack)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "intact" in done.stdout
