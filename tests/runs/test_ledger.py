"""The ledger is tamper-evident: verify_audit catches edited, deleted, forged rows."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from runs import ledger
from runs.engine import run_until_idle
from runs.models import AuditEvent, Run, RunItem
from runs.services import run_start


@pytest.fixture
def finished_run(automation):
    run = run_start(automation=automation("builtin.echo", "builtin.echo"), inputs=[{"a": 1}, {"a": 2}])
    run_until_idle(run)
    run.refresh_from_db()
    return run


def verify():
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except CommandError as exc:
        return False, err.getvalue() + str(exc)
    return True, out.getvalue()


def test_intact_ledger_verifies(finished_run):
    ok, text = verify()
    assert ok, text
    assert "every chain is intact" in text
    # audit events and run items share the run's chain, seq 1..n without gaps
    seqs = sorted(
        [*AuditEvent.objects.filter(run=finished_run).values_list("seq", flat=True),
         *RunItem.objects.filter(run=finished_run).values_list("seq", flat=True)]
    )
    assert seqs == list(range(1, finished_run.ledger_seq + 1))
    assert RunItem.objects.filter(run=finished_run).count() == 4


def test_edited_run_item_is_caught(finished_run):
    item = RunItem.objects.filter(run=finished_run).order_by("seq")[1]
    RunItem.objects.filter(pk=item.pk).update(outcome="failed")
    ok, text = verify()
    assert not ok
    assert f"seq {item.seq} (runitem {item.pk}): contents were edited" in text


def test_edited_audit_event_is_caught(finished_run):
    event = AuditEvent.objects.filter(run=finished_run).order_by("seq").first()
    AuditEvent.objects.filter(pk=event.pk).update(reason="nothing to see")
    ok, text = verify()
    assert not ok and f"(auditevent {event.pk}): contents were edited" in text


def test_deleted_row_is_caught(finished_run):
    item = RunItem.objects.filter(run=finished_run).order_by("seq")[1]
    RunItem.objects.filter(pk=item.pk).delete()
    ok, text = verify()
    assert not ok and "missing row(s) before it" in text


def test_deleted_last_row_is_caught_by_the_head(finished_run):
    last = max(
        [*AuditEvent.objects.filter(run=finished_run), *RunItem.objects.filter(run=finished_run)],
        key=lambda r: r.seq,
    )
    type(last).objects.filter(pk=last.pk).delete()
    ok, text = verify()
    assert not ok and "rows were deleted or appended outside the ledger" in text


def test_forged_row_with_recomputed_hash_is_caught(finished_run):
    """A forger who recomputes the row's own hash still breaks the next link."""
    item = RunItem.objects.filter(run=finished_run).order_by("seq")[1]
    item.outcome = "skipped"
    item.hash = ledger.record_hash(item.prev_hash, item.seq, item.ledger_fields())
    RunItem.objects.filter(pk=item.pk).update(outcome=item.outcome, hash=item.hash)
    ok, text = verify()
    assert not ok and "prev_hash does not match the row before" in text


def test_row_inserted_out_of_chain_is_caught(finished_run):
    forged = RunItem.objects.filter(run=finished_run).order_by("seq").first()
    forged.pk = None
    forged.seq = finished_run.ledger_seq + 1
    forged.prev_hash = finished_run.ledger_hash
    forged.hash = ledger.record_hash(forged.prev_hash, forged.seq, forged.ledger_fields())
    forged.save()
    ok, text = verify()
    assert not ok and "rows were deleted or appended outside the ledger" in text


def test_global_chain_covers_definition_events(automation):
    automation("builtin.echo")
    assert AuditEvent.objects.filter(chain=ledger.GLOBAL_CHAIN, verb="version.published").exists()
    ok, _ = verify()
    assert ok
    event = AuditEvent.objects.filter(chain=ledger.GLOBAL_CHAIN).first()
    AuditEvent.objects.filter(pk=event.pk).update(actor_label="mallory")
    ok, text = verify()
    assert not ok and "chain global" in text


def test_each_run_has_its_own_chain(automation):
    auto = automation("builtin.echo")
    a, b = run_start(automation=auto), run_start(automation=auto)
    run_until_idle()
    a.refresh_from_db(), b.refresh_from_db()
    assert AuditEvent.objects.filter(run=a).values_list("chain", flat=True).distinct().get() == str(a.pk)
    assert Run.objects.get(pk=a.pk).ledger_seq == a.ledger_seq > 0
    assert ledger.verify_chain(a) is None and ledger.verify_chain(b) is None


def test_engine_digest_matches_the_canonical_form():
    """The engine writes run item digests from a template; verify_audit recomputes
    them with json.dumps. Any difference would flag every engine row as edited."""
    import datetime

    from runs.models import run_item_ledger_fields

    moment = datetime.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc)
    other_zone = moment.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
    base = {
        "run_id": 7, "work_item_id": 12, "step_id": 3, "step_run_id": 9,
        "action": "builtin.echo", "subject": "acct-1", "parameters": {"b": [1, 2.5], "a": None},
        "attempt": 1, "idempotency_key": "7:12:builtin.echo", "outcome": "succeeded",
        "result_ref": "", "failure_type": "", "failure_cause": "", "started_at": moment,
        "finished_at": moment,
    }
    odd = {
        **base,
        "subject": 'Zoë "quoted" \\ back\nslash\t\u2028\x00 ☃ \ud83d\ude00'.encode(
            "utf-16", "surrogatepass").decode("utf-16"),
        "parameters": {"ü": {"nested": ["=1+1", True, False, 10**20, -0.0]}, "": ""},
        "result_ref": "ref/ü", "failure_cause": "ValueError: '\\x7f'\x7f",
        "started_at": other_zone, "attempt": 12, "run_id": "7",
    }
    rows = [base, odd, {**base, "parameters": base["parameters"]}]
    # every split of the columns into shared ones and each row's own, the odd
    # values on either side (the template must escape what it holds, e.g. a "%")
    odd_shared = {**odd, "action": "100% echo", "parameters": {"%s": "%(x)s %%"}}
    for source in (base, odd_shared):
        for names in (["run_id"], ["run_id", "step_id", "step_run_id", "action",
                      "parameters", "finished_at"], [n for n in base if n != "subject"]):
            shared = {name: source[name] for name in names}
            own = [{k: v for k, v in row.items() if k not in shared} for row in rows]
            assert ledger.run_item_digests(shared, own) == [
                ledger.content_digest(run_item_ledger_fields({**row, **shared}))
                for row in rows
            ], names
    with pytest.raises(ValueError, match="run_id must be shared"):
        ledger.run_item_digests({}, rows)
