"""Housekeeping signs chain heads; verify_audit holds every chain to its latest
signed checkpoint, so a chain rewritten together with its head fails."""

import base64
import io
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError

from runs import ledger, ledger_verify
from runs.engine import run_until_idle
from runs.engine.housekeeping import housekeeping
from runs.evidence.checkpoints import CHECKPOINT_FILE, checkpoints_sign
from runs.models import AuditEvent, LedgerCheckpoint, Run, RunItem
from runs.services import run_archive, run_start


@pytest.fixture
def finished_run(automation):
    run = run_start(
        automation=automation("builtin.echo", "builtin.echo"),
        inputs=[{"a": 1}, {"a": 2}],
    )
    run_until_idle(run)
    run.refresh_from_db()
    return run


def verify():
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except CommandError:
        return False, err.getvalue()
    return True, out.getvalue()


def rewrite_chain(run):
    """What someone with write access to the database would do: change a run
    item, then re-hash every row after it and the run's head, consistently."""
    rows = sorted(
        [*AuditEvent.objects.filter(run=run), *RunItem.objects.filter(run=run)],
        key=lambda row: row.seq,
    )
    item = next(row for row in rows if isinstance(row, RunItem))
    item.outcome = "failed"
    item.failure_cause = "rewritten"
    prev = ""
    for row in rows:
        row.prev_hash = prev
        row.hash = prev = ledger.record_hash(prev, row.seq, row.ledger_fields())
        type(row).objects.filter(pk=row.pk).update(
            prev_hash=row.prev_hash,
            hash=row.hash,
            **(
                {"outcome": row.outcome, "failure_cause": row.failure_cause}
                if row.pk == item.pk and isinstance(row, RunItem)
                else {}
            ),
        )
    Run.objects.filter(pk=run.pk).update(ledger_hash=prev)
    assert not list(ledger_verify.verify_all())  # the links alone cannot tell


def test_housekeeping_signs_the_chains_that_moved(finished_run):
    report = housekeeping()
    assert report["checkpoints"] >= 2  # the run's chain and the global one
    run_cp = LedgerCheckpoint.objects.get(chain=str(finished_run.pk))
    assert (run_cp.seq, run_cp.hash) == (
        finished_run.ledger_seq,
        finished_run.ledger_hash,
    )
    assert LedgerCheckpoint.objects.filter(chain=ledger.GLOBAL_CHAIN).exists()
    assert checkpoints_sign() == 0  # nothing moved since
    run_archive(finished_run, actor=None, reason="done")
    assert checkpoints_sign() == 1
    finished_run.refresh_from_db()
    latest = LedgerCheckpoint.objects.filter(chain=str(finished_run.pk)).latest("seq")
    assert latest.seq == finished_run.ledger_seq
    ok, text = verify()
    assert ok, text


def test_a_chain_rewritten_with_its_head_fails_against_the_checkpoint(finished_run):
    checkpoints_sign()
    rewrite_chain(finished_run)
    ok, text = verify()
    assert not ok
    assert (
        f"chain {finished_run.pk}: checkpoint at seq {finished_run.ledger_seq}" in text
    )
    assert "chain rewritten" in text


def test_a_forged_checkpoint_fails(finished_run):
    checkpoints_sign()
    rewrite_chain(finished_run)
    finished_run.refresh_from_db()
    # the forger moves the checkpoint to the new head but cannot sign it
    LedgerCheckpoint.objects.filter(chain=str(finished_run.pk)).update(
        hash=finished_run.ledger_hash
    )
    ok, text = verify()
    assert not ok and "the signature does not verify" in text


def test_the_checkpoint_file_catches_deleted_checkpoint_rows(
    finished_run, settings, tmp_path
):
    settings.RUNS_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    with django_on_commit():  # the file is written after the commit
        checkpoints_sign()
    lines = (tmp_path / "checkpoints" / CHECKPOINT_FILE).read_text().splitlines()
    chains = {json.loads(line)["chain"] for line in lines}
    assert str(finished_run.pk) in chains
    rewrite_chain(finished_run)
    LedgerCheckpoint.objects.all().delete()  # and hides the signed heads
    ok, text = verify()
    assert not ok
    assert "checkpoints.jsonl" in text and "chain rewritten" in text


def django_on_commit():
    """Run on_commit callbacks of the test's transaction at the block's end."""
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(execute=True)


def test_key_rotation_re_signs_every_chain(finished_run, settings):
    checkpoints_sign()
    settings.RUNS_LEDGER_SIGNING_KEY = base64.b64encode(b"k" * 32).decode()
    ok, text = verify()
    assert not ok and "signed by another key" in text
    assert checkpoints_sign() >= 2
    ok, text = verify()
    assert ok, text


def test_ledger_public_key_prints_the_configured_key(db, settings):
    private = Ed25519PrivateKey.generate()
    settings.RUNS_LEDGER_SIGNING_KEY = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    out = io.StringIO()
    call_command("ledger_public_key", stdout=out)
    expected = (
        private.public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        .decode()
    )
    assert out.getvalue() == expected
    seed = base64.b64encode(b"s" * 32).decode()
    settings.RUNS_LEDGER_SIGNING_KEY = seed
    out = io.StringIO()
    call_command("ledger_public_key", stdout=out)
    assert (
        out.getvalue()
        == Ed25519PrivateKey.from_private_bytes(b"s" * 32)
        .public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        .decode()
    )


def test_the_derived_key_warns_on_deploy_and_a_bad_key_is_an_error(db, settings):
    settings.RUNS_LEDGER_SIGNING_KEY = ""
    ids = {m.id for m in checks.run_checks(include_deployment_checks=True)}
    assert "runs.W301" in ids
    assert "runs.W301" not in {m.id for m in checks.run_checks()}
    settings.RUNS_LEDGER_SIGNING_KEY = base64.b64encode(b"x" * 32).decode()
    assert "runs.W301" not in {
        m.id for m in checks.run_checks(include_deployment_checks=True)
    }
    settings.RUNS_LEDGER_SIGNING_KEY = "not a key"
    assert "runs.E301" in {m.id for m in checks.run_checks()}


def test_a_bad_key_does_not_stop_housekeeping_and_verify_audit_names_it(
    finished_run, settings
):
    settings.RUNS_LEDGER_SIGNING_KEY = "not a key"
    report = housekeeping()
    assert report["checkpoints"] == -1 and "leases" in report
    ok, text = verify()
    assert not ok and "RUNS_LEDGER_SIGNING_KEY" in text
