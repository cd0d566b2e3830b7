"""The ledger is tamper-evident: verify_audit catches edited, deleted, forged rows."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from runs import ledger, ledger_verify
from runs.engine import run_until_idle
from runs.models import AuditEvent, Run, RunItem
from runs.services import run_start


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
    except CommandError as exc:
        return False, err.getvalue() + str(exc)
    return True, out.getvalue()


def test_intact_ledger_verifies(finished_run):
    ok, text = verify()
    assert ok, text
    assert "every chain is intact" in text
    # audit events and run items share the run's chain, seq 1..n without gaps
    seqs = sorted(
        [
            *AuditEvent.objects.filter(run=finished_run).values_list("seq", flat=True),
            *RunItem.objects.filter(run=finished_run).values_list("seq", flat=True),
        ]
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
        [
            *AuditEvent.objects.filter(run=finished_run),
            *RunItem.objects.filter(run=finished_run),
        ],
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
    forged.hash = ledger.record_hash(
        forged.prev_hash, forged.seq, forged.ledger_fields()
    )
    forged.save()
    ok, text = verify()
    assert not ok and "rows were deleted or appended outside the ledger" in text


def test_global_chain_covers_definition_events(automation):
    automation("builtin.echo")
    assert AuditEvent.objects.filter(
        chain=ledger.GLOBAL_CHAIN, verb="version.published"
    ).exists()
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
    assert AuditEvent.objects.filter(run=a).values_list(
        "chain", flat=True
    ).distinct().get() == str(a.pk)
    assert Run.objects.get(pk=a.pk).ledger_seq == a.ledger_seq > 0
    assert ledger_verify.verify_chain(a) is None
    assert ledger_verify.verify_chain(b) is None


def test_engine_digest_matches_the_canonical_form():
    """The engine writes run item digests from a template; verify_audit recomputes
    them with json.dumps. Any difference would flag every engine row as edited."""
    import datetime

    from runs.models import run_item_ledger_fields

    moment = datetime.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)
    other_zone = moment.astimezone(
        datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    )
    base = {
        "run_id": 7,
        "work_item_id": 12,
        "step_id": 3,
        "step_run_id": 9,
        "action": "builtin.echo",
        "subject": "acct-1",
        "parameters": {"b": [1, 2.5], "a": None},
        "attempt": 1,
        "idempotency_key": "7:12:builtin.echo",
        "outcome": "succeeded",
        "result_ref": "",
        "failure_type": "",
        "failure_cause": "",
        "started_at": moment,
        "finished_at": moment,
    }
    odd = {
        **base,
        "subject": 'Zoë "quoted" \\ back\nslash\t\u2028\x00 ☃ \ud83d\ude00'.encode(
            "utf-16", "surrogatepass"
        ).decode("utf-16"),
        "parameters": {"ü": {"nested": ["=1+1", True, False, 10**20, -0.0]}, "": ""},
        "result_ref": "ref/ü",
        "failure_cause": "ValueError: '\\x7f'\x7f",
        "started_at": other_zone,
        "attempt": 12,
        "run_id": "7",
    }
    rows = [base, odd, {**base, "parameters": base["parameters"]}]
    # every split of the columns into shared ones and each row's own, the odd
    # values on either side (the template must escape what it holds, e.g. a "%")
    odd_shared = {**odd, "action": "100% echo", "parameters": {"%s": "%(x)s %%"}}
    for source in (base, odd_shared):
        for names in (
            ["run_id"],
            ["run_id", "step_id", "step_run_id", "action", "parameters", "finished_at"],
            [n for n in base if n != "subject"],
        ):
            shared = {name: source[name] for name in names}
            own = [{k: v for k, v in row.items() if k not in shared} for row in rows]
            assert ledger.run_item_digests(shared, own) == [
                ledger.content_digest(run_item_ledger_fields({**row, **shared}))
                for row in rows
            ], names
    with pytest.raises(ValueError, match="run_id must be shared"):
        ledger.run_item_digests({}, rows)


def test_prepared_run_items_cover_every_run_item_column():
    """The engine's bulk insert writes PreparedRunItems.COLUMNS plus the chain
    columns; a RunItem column missing there would silently take its default."""
    chain = {"id", "seq", "prev_hash", "hash"}
    columns = {f.attname for f in RunItem._meta.concrete_fields} - chain
    assert set(ledger.PreparedRunItems.COLUMNS) == columns
    assert len(ledger.PreparedRunItems.COLUMNS) == len(columns)


def test_the_digest_template_keys_are_read_off_the_ledger_fields():
    """_RUN_ITEM_KEYS is derived from run_item_ledger_fields: every key the hash
    covers, in content_digest's order, each from the column it is read from."""
    from runs.models import run_item_ledger_fields

    keys = [key for key, _ in ledger._RUN_ITEM_KEYS]
    names = {name for _, name in ledger._RUN_ITEM_KEYS if name is not None}
    fields = run_item_ledger_fields({n: n for n in ledger.PreparedRunItems.COLUMNS})
    assert keys == sorted(fields)
    assert names <= set(ledger.PreparedRunItems.COLUMNS)
    assert {key for key, name in ledger._RUN_ITEM_KEYS if name is None} == {"kind"}


# JSON numbers PostgreSQL's jsonb does not give back as written: it has no negative
# zero and writes 1e16 as 10000000000000000 (which Python reads back as an int)
JSONB_ODD = {
    "big": 1e16,
    "neg": -0.0,
    "huge": 1.2345678901234567e300,
    "nested": [1e22, -1e17, 2.5, 1e-7, 1.0, -0.0],
    "int": 10**20,
}


def test_json_numbers_jsonb_rewrites_still_verify(automation):
    """On PostgreSQL the rows are read back from jsonb; verify_audit must pass."""
    auto = automation({"action": "builtin.echo", "parameters": JSONB_ODD})
    run = run_start(automation=auto, inputs=[{"a": 1e16, "b": -0.0}])
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "completed"
    ledger.append(
        run=run,
        events=[ledger.audit_event(verb="test.numbers", run=run, after=JSONB_ODD)],
    )
    ledger.append(events=[ledger.audit_event(verb="test.numbers", before=JSONB_ODD)])
    item = RunItem.objects.filter(run=run).first()
    assert item.parameters["big"] == 1e16 and item.parameters["neg"] == 0
    ok, text = verify()
    assert ok, text
