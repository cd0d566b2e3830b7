"""Retention keeps the audit chain valid: deletions are audit events."""

import datetime

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from runs.engine import run_until_idle
from runs.ledger import GLOBAL_CHAIN
from runs.ledger_verify import verify_all
from runs.models import AuditEvent, Run, RunItem
from runs.retention import missing_runs, retention_apply
from runs.services import run_start
from runs.tasks import housekeeping


def _age(run, *, days):
    then = timezone.now() - datetime.timedelta(days=days)
    Run.objects.filter(pk=run.pk).update(created_at=then, completed_at=then)


@pytest.fixture
def runs(automation):
    auto = automation("builtin.echo", slug="kyc")
    old, recent, waiting = (
        run_start(automation=auto, inputs=[{"subject": s}]) for s in "abc"
    )
    open_run = run_start(
        automation=automation("test.business_fail"), inputs=[{"bad": 1}]
    )
    run_until_idle()
    _age(old, days=100)
    _age(recent, days=5)
    _age(open_run, days=100)  # unresolved: waits for people, never archived
    return old, recent, waiting, open_run


def test_off_when_unset(runs, settings):
    settings.RUNS_ARCHIVE_AFTER_DAYS = None
    settings.RUNS_DELETE_ARCHIVED_AFTER_DAYS = None
    result = retention_apply()
    assert result.archived == [] and result.deleted == []
    assert not Run.objects.filter(archived=True).exists()


def test_archive_then_delete_keeps_verify_audit_green(runs, settings):
    old, recent, waiting, open_run = runs
    settings.RUNS_ARCHIVE_AFTER_DAYS = 30
    settings.RUNS_DELETE_ARCHIVED_AFTER_DAYS = 10
    dry = retention_apply(dry_run=True)
    assert (
        dry.archived == [old.number] and not Run.objects.filter(archived=True).exists()
    )
    assert housekeeping()["retention"] == {"archived": 1, "deleted": 0}
    old.refresh_from_db()
    assert old.archived
    assert AuditEvent.objects.filter(run=old, verb="run.archived").exists()
    head = (old.ledger_seq, old.ledger_hash)

    # ten days later the archived run goes, with its items and chain
    later = timezone.now() + datetime.timedelta(days=11)
    result = retention_apply(now=later)
    assert result.deleted == [old.number]
    assert not Run.objects.filter(pk=old.pk).exists()
    assert not RunItem.objects.filter(run_id=old.pk).exists()
    assert set(Run.objects.values_list("pk", flat=True)) == {
        recent.pk,
        waiting.pk,
        open_run.pk,
    }
    event = AuditEvent.objects.get(chain=GLOBAL_CHAIN, verb="run.deleted")
    assert event.object_id == str(old.pk) and event.run is None
    assert event.before["number"] == old.number
    assert (event.before["ledger_seq"], event.before["ledger_hash"]) == head
    assert list(verify_all()) == [] and missing_runs() == []
    call_command("verify_audit")


def test_a_deletion_without_its_audit_event_is_caught(runs, capsys):
    old = runs[0]
    Run.objects.filter(pk=old.pk).delete()  # behind the ledger's back
    assert missing_runs() == [old.number]
    with pytest.raises(CommandError):
        call_command("verify_audit")
    assert f"run number(s) {old.number} were issued" in capsys.readouterr().err


def test_only_archived_runs_are_deleted(runs):
    old = runs[0]
    later = timezone.now() + datetime.timedelta(days=365)
    assert retention_apply(now=later, delete_after_days=1).deleted == []
    assert Run.objects.filter(pk=old.pk).exists()


def test_command_dry_run(runs, capsys, settings):
    settings.RUNS_ARCHIVE_AFTER_DAYS = 30
    call_command("apply_retention", "--dry-run")
    out = capsys.readouterr().out
    assert f"archive: #{runs[0].number}" in out and "would archive 1 run(s)" in out
    assert not Run.objects.filter(archived=True).exists()
