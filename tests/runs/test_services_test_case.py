import pytest

from runs.models import AuditEvent
from runs.services import InvalidRequest, run_mark_test_case, run_start


@pytest.mark.django_db
def test_mark_and_unmark_test_case_are_audited(automation, user):
    run = run_start(automation=automation())
    run_mark_test_case(run, actor=user, reason="reference run")
    run.refresh_from_db()
    assert run.is_test_case
    event = AuditEvent.objects.filter(run=run).order_by("-seq").first()
    assert (event.verb, event.actor, event.reason) == (
        "run.test_case_marked",
        user,
        "reference run",
    )
    run_mark_test_case(run, actor=user, is_test_case=False)
    run.refresh_from_db()
    assert not run.is_test_case


@pytest.mark.django_db
def test_marking_twice_is_refused_and_writes_nothing(automation, user):
    run = run_start(automation=automation(), is_test_case=True)
    seq = run.ledger_seq
    with pytest.raises(InvalidRequest, match="already a test case"):
        run_mark_test_case(run, actor=user)
    run.refresh_from_db()
    assert run.is_test_case and run.ledger_seq == seq
