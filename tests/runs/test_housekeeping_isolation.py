"""Issue 13, "Housekeeping stops at the first error": a decision made while
`approvals_expire` runs raised IllegalTransition and aborted the whole pass, and the
parts in `runs.tasks.housekeeping` were not isolated from each other."""

import sys

import pytest
from django.utils import timezone

from runs import ledger, tasks
from runs.engine import housekeeping, run_until_idle
from runs.models import AuditEvent, WorkItem
from runs.services import run_start, work_item_decide
from runs.states import RunState

pytestmark = pytest.mark.django_db


def _approval_run(auto, user):
    run = run_start(automation=auto, inputs=[{"amount": 5}], actor=user)
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_INPUT
    return run


@pytest.fixture
def two_expired(automation, user):
    auto = automation(
        {
            "action": "builtin.request_approval",
            "parameters": {"approvers": ["bob"], "deadline_seconds": 3600},
        },
        "test.count",
    )
    runs = [_approval_run(auto, user), _approval_run(auto, user)]
    WorkItem.objects.update(
        approval_deadline=timezone.now() - timezone.timedelta(seconds=1)
    )
    return runs


def test_a_decision_racing_the_expiry_stops_only_its_own_run(
    two_expired, other_user, monkeypatch
):
    first, second = two_expired
    real_event = ledger.audit_event
    raced = []

    def decided_meanwhile(*args, **kwargs):
        # bob's decision commits after the pass read the first run's item, just
        # before that item's expiry is written
        run = kwargs.get("run")
        expiring = kwargs.get("verb") == "work_item.approval_expired"
        if expiring and not raced and run is not None and run.pk == first.pk:
            raced.append(True)
            item = WorkItem.objects.get(run=first)
            work_item_decide(
                first, actor=other_user, work_item_id=item.pk, decision="approve"
            )
        return real_event(*args, **kwargs)

    monkeypatch.setattr(ledger, "audit_event", decided_meanwhile)
    report = housekeeping()

    assert raced
    assert report["approvals_expired"] == 1
    assert "errors" not in report
    assert "progressed" in report  # the parts after it ran
    verbs = set(AuditEvent.objects.filter(run=first).values_list("verb", flat=True))
    assert "work_item.approved" in verbs and "work_item.approval_expired" not in verbs
    assert WorkItem.objects.get(run=first).failure_code != "approval_expired"
    expired = WorkItem.objects.get(run=second)
    assert (expired.state, expired.failure_code) == ("failed", "approval_expired")


def test_a_failing_engine_part_is_reported_and_the_others_run(
    two_expired, monkeypatch, caplog
):
    # the module (runs.engine exports a function of the same name)
    module = sys.modules["runs.engine.housekeeping"]

    def broken(now):
        raise RuntimeError("lease table unreadable")

    monkeypatch.setattr(module, "leases_reap", broken)
    report = housekeeping()
    assert report["errors"] == {"leases": "RuntimeError: lease table unreadable"}
    assert report["approvals_expired"] == 2
    assert "housekeeping: leases failed" in caplog.text


def test_a_failing_task_part_is_reported_and_the_others_run(monkeypatch, db):
    from django_q.models import Schedule

    import runs.mail.tasks as mail_tasks

    def broken():
        raise RuntimeError("IMAP settings unreadable")

    monkeypatch.setattr(mail_tasks, "mail_schedules_sync", broken)
    Schedule.objects.filter(name="runs:housekeeping").delete()
    report = tasks.housekeeping()
    assert report["errors"] == {
        "mail_schedules": "RuntimeError: IMAP settings unreadable"
    }
    assert "retention" in report and "schedules" in report and "leases" in report
    assert Schedule.objects.filter(name="runs:housekeeping").exists()
