"""`receive_email` with real messages: what starts a run, and what is refused."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from automations.services import automation_retire
from runs.engine import run_until_idle
from runs.mail import intake
from runs.mail.models import InboundMessage
from runs.models import Run, WorkItem, WorkItemFile
from runs.states import RunState

from .conftest import eml, receive, stored_files

ROOT = Path(__file__).resolve().parents[2]


def _nothing_written(settings):
    assert Run.objects.count() == 0
    assert WorkItem.objects.count() == 0
    assert WorkItemFile.objects.count() == 0
    assert stored_files(settings) == []


def test_multipart_message_with_attachments_starts_one_run(invoices, settings):
    code, out, _ = receive(eml("invoice_multipart.eml"))

    assert code == 0
    run = Run.objects.get()
    assert f"run #{run.number} of invoice-intake" in out
    assert (run.automation, run.trigger_kind) == (invoices, "email")
    assert run.trigger == invoices.triggers.get()
    assert run.run_by_label == "e-mail from billing@acme.example"
    item = run.work_items.get()
    payload = item.payload
    assert payload["from"] == "billing@acme.example"
    assert payload["from_name"] == "ACME Billing"
    assert payload["to"] == ["invoices@runs.example"]
    assert payload["subject"] == "Invoice 2026-0042"
    assert payload["date"] == "2026-11-16T09:14:01+01:00"
    assert payload["message_id"] == "<20261116091401.4242@acme.example>"
    assert "please find invoice 2026-0042 attached" in payload["text"]
    assert "<b>2026-0042</b>" in payload["html"]
    assert [a["name"] for a in payload["attachments"]] == [
        "invoice-2026-0042.pdf",
        "lines.csv",
    ]

    files = {f.name: f for f in item.files.all()}
    assert set(files) == {"invoice-2026-0042.pdf", "lines.csv"}
    pdf = files["invoice-2026-0042.pdf"]
    with pdf.file.open("rb") as handle:
        data = handle.read()
    assert data.startswith(b"%PDF-1.4") and b"EUR 1,234.50" in data
    assert (pdf.size, pdf.content_type) == (len(data), "application/pdf")
    assert files["lines.csv"].file.read() == b"line,amount\r\n1,1000.00\r\n2,234.50\r\n"
    assert len(stored_files(settings)) == 2

    record = InboundMessage.objects.get()
    assert (record.outcome, record.reason, record.run, record.source) == (
        "accepted",
        "",
        run,
        "stdin",
    )

    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED


def test_non_ascii_headers_and_filenames_are_decoded(invoices):
    code, _, _ = receive(eml("non_ascii_headers.eml"))

    assert code == 0
    item = WorkItem.objects.get()
    assert item.payload["from"] == "zoe@lieferant.example"
    assert item.payload["from_name"] == "Zoë Ångström"
    assert item.payload["subject"] == "Rechnung für März € 99"
    assert "Rechnung für März." in item.payload["text"]
    assert "Grüßen" in item.payload["text"]
    attachment = item.files.get()
    assert attachment.name == "Résumé été.txt"
    assert attachment.file.read().decode() == "Résumé: Lieferung im März\n"


def test_html_only_message(invoices):
    assert receive(eml("html_only.eml"))[0] == 0
    payload = WorkItem.objects.get().payload
    assert payload["text"] == ""
    assert "<i>2026-0043</i>" in payload["html"]


def test_forwarded_message_becomes_an_eml_file(invoices):
    assert receive(eml("forwarded.eml"))[0] == 0
    attachment = WorkItemFile.objects.get()
    assert (attachment.name, attachment.content_type) == (
        "message.eml",
        "message/rfc822",
    )
    assert b"Original invoice text." in attachment.file.read()


@pytest.mark.parametrize(
    "message,address",
    [
        ("plain_cc.eml", "alerts@runs.example"),  # Cc
        ("delivered_to.eml", "invoices@runs.example"),  # Delivered-To / X-Original-To
    ],
)
def test_recipient_found_beyond_to(automation, message, address):
    automation("builtin.echo", triggers=[{"kind": "email", "address": address}])
    assert receive(eml(message))[0] == 0
    assert Run.objects.count() == 1


def test_envelope_recipient_from_the_mta(automation):
    automation(
        "builtin.echo", triggers=[{"kind": "email", "address": "bcc@runs.example"}]
    )
    assert receive(eml("plain_cc.eml"))[0] == 67
    code, _, _ = receive(eml("plain_cc.eml"), "--recipient", "BCC@runs.example")
    assert code == 0 and Run.objects.count() == 1


def test_same_message_twice_starts_one_run(invoices, settings):
    raw = eml("invoice_multipart.eml")
    assert receive(raw)[0] == 0
    code, out, _ = receive(raw)

    assert code == 0
    run = Run.objects.get()
    assert f"invoice-intake: duplicate of run #{run.number}" in out
    assert WorkItemFile.objects.count() == 2 and len(stored_files(settings)) == 2
    duplicate = InboundMessage.objects.get(outcome="duplicate")
    assert duplicate.run == run


def test_message_without_message_id_is_deduplicated_by_content(invoices):
    raw = eml("no_message_id.eml")
    assert receive(raw)[0] == 0
    assert receive(raw)[0] == 0
    assert Run.objects.count() == 1
    assert (
        Run.objects.get()
        .work_items.get()
        .payload["message_id"]
        .endswith("@runs.invalid>")
    )


def test_one_run_per_automation_whose_trigger_matches(automation):
    one = automation(
        "builtin.echo",
        slug="one",
        triggers=[
            {"kind": "email", "address": "invoices@runs.example"},
            {"kind": "email", "address": "invoices@runs.example", "subject": "Invoice"},
        ],
    )
    two = automation(
        "builtin.echo",
        slug="two",
        triggers=[
            {"kind": "email", "address": "Invoices@Runs.Example"},
        ],
    )
    raw = eml("invoice_multipart.eml")
    assert receive(raw)[0] == 0
    assert receive(raw)[0] == 0
    assert sorted(Run.objects.values_list("automation__slug", flat=True)) == [
        "one",
        "two",
    ]
    assert {r.automation for r in Run.objects.all()} == {one, two}
    assert WorkItemFile.objects.count() == 4


@pytest.mark.parametrize(
    "message,detail",
    [
        ("malformed_empty.eml", "the message is empty"),
        ("malformed_not_a_message.eml", "MissingHeaderBodySeparatorDefect"),
        ("malformed_binary.eml", "damaged or truncated"),
        ("malformed_no_from.eml", "no From address"),
        ("malformed_bad_from.eml", "no From address"),
        ("malformed_truncated.eml", "CloseBoundaryNotFoundDefect"),
        ("malformed_bad_base64.eml", "InvalidBase64"),
    ],
)
def test_malformed_message_is_rejected_and_leaves_nothing(
    invoices, settings, caplog, message, detail
):
    with caplog.at_level(logging.WARNING, logger="runs.mail"):
        code, _, error = receive(eml(message))

    assert code == intake.EX_DATAERR
    assert "rejected (unparseable)" in error and detail in error
    _nothing_written(settings)
    record = InboundMessage.objects.get()
    assert (record.outcome, record.reason, record.run) == (
        "rejected",
        "unparseable",
        None,
    )
    assert detail in record.detail
    assert "rejected (unparseable)" in caplog.text


def test_no_automation_for_the_recipient(invoices, settings):
    code, _, error = receive(eml("plain_cc.eml"))
    assert code == intake.EX_NOUSER
    assert "no_automation" in error and "alerts@runs.example" in error
    _nothing_written(settings)
    record = InboundMessage.objects.get()
    assert (record.reason, record.automation, record.sender) == (
        "no_automation",
        None,
        "alerts@monitoring.example",
    )


def test_disabled_trigger_takes_nothing(invoices, settings):
    invoices.triggers.update(enabled=False)
    assert receive(eml("invoice_multipart.eml"))[0] == intake.EX_NOUSER
    _nothing_written(settings)


@pytest.mark.parametrize(
    "senders,accepted",
    [
        (["someone@else.example"], False),
        (["billing@acme.example"], True),
        (["@acme.example"], True),
        (["@cme.example"], False),
    ],
)
def test_sender_allow_list(automation, settings, senders, accepted):
    automation(
        "builtin.echo",
        triggers=[
            {"kind": "email", "address": "invoices@runs.example", "senders": senders}
        ],
    )
    code, _, error = receive(eml("invoice_multipart.eml"))
    if accepted:
        assert code == 0 and Run.objects.count() == 1
    else:
        assert code == intake.EX_NOPERM
        assert "sender_not_allowed" in error and "billing@acme.example" in error
        _nothing_written(settings)
        assert InboundMessage.objects.get().automation is not None


@pytest.mark.parametrize(
    "pattern,accepted",
    [(r"^Invoice \d{4}-\d{4}$", True), (r"(?i)^INVOICE", True), (r"^Receipt", False)],
)
def test_subject_pattern(automation, settings, pattern, accepted):
    automation(
        "builtin.echo",
        triggers=[
            {"kind": "email", "address": "invoices@runs.example", "subject": pattern}
        ],
    )
    code, _, error = receive(eml("invoice_multipart.eml"))
    if accepted:
        assert code == 0 and Run.objects.count() == 1
    else:
        assert code == intake.EX_NOUSER and "subject_mismatch" in error
        _nothing_written(settings)


def test_attachment_too_large_rejects_the_whole_message(invoices, settings):
    settings.RUNS_EMAIL_MAX_ATTACHMENT_BYTES = 50
    code, _, error = receive(eml("invoice_multipart.eml"))
    assert code == intake.EX_DATAERR
    assert "attachment_too_large" in error
    assert "invoice-2026-0042.pdf is 91 bytes, over the limit of 50" in error
    _nothing_written(settings)
    assert InboundMessage.objects.get().reason == "attachment_too_large"


def test_message_too_large_is_rejected_with_its_headers_logged(invoices, settings):
    settings.RUNS_EMAIL_MAX_MESSAGE_BYTES = 600
    code, _, error = receive(eml("invoice_multipart.eml"))
    assert code == intake.EX_DATAERR and "too_large" in error
    _nothing_written(settings)
    record = InboundMessage.objects.get()
    assert record.size == len(eml("invoice_multipart.eml"))
    assert record.message_id == "<20261116091401.4242@acme.example>"


def test_draft_only_automation_is_not_started_by_mail(automation, settings):
    automation(
        "builtin.echo",
        publish=False,
        triggers=[{"kind": "email", "address": "invoices@runs.example"}],
    )
    code, _, error = receive(eml("invoice_multipart.eml"))
    assert code == intake.EX_UNAVAILABLE
    assert "not_runnable" in error and "no published version" in error
    _nothing_written(settings)


def test_retired_automation_is_not_started_by_mail(invoices, settings):
    automation_retire(invoices)
    assert receive(eml("invoice_multipart.eml"))[0] == intake.EX_UNAVAILABLE
    _nothing_written(settings)


def test_a_failure_midway_rolls_back_and_removes_stored_files(
    invoices, settings, monkeypatch
):
    original = WorkItemFile.save
    calls = []

    def save_then_fail(self, *args, **kwargs):
        calls.append(self.name)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WorkItemFile, "save", save_then_fail)
    code, _, error = receive(eml("invoice_multipart.eml"))

    assert code == intake.EX_TEMPFAIL and "disk full" in error
    assert len(calls) == 2  # the first file had been stored
    _nothing_written(settings)
    assert InboundMessage.objects.count() == 0  # not taken: the MTA delivers again
    monkeypatch.setattr(WorkItemFile, "save", original)
    assert receive(eml("invoice_multipart.eml"))[0] == 0
    assert WorkItemFile.objects.count() == 2


def test_concurrent_delivery_loses_to_the_unique_claim(invoices, settings, monkeypatch):
    """Two deliveries both past the duplicate check: the claim's unique constraint
    lets one run through and the other rolls back (files included)."""
    assert receive(eml("invoice_multipart.eml"))[0] == 0
    real = intake._duplicate_of
    calls = []

    def miss_first(trigger, message_id):
        calls.append(message_id)
        return None if len(calls) == 1 else real(trigger, message_id)

    monkeypatch.setattr(intake, "_duplicate_of", miss_first)
    code, out, _ = receive(eml("invoice_multipart.eml"))

    assert code == 0 and "duplicate" in out and len(calls) == 2
    assert Run.objects.count() == 1 and WorkItemFile.objects.count() == 2
    assert len(stored_files(settings)) == 2


def _database_url() -> str:
    conf = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{conf['NAME']}"
    auth = conf["USER"] + (f":{conf['PASSWORD']}" if conf["PASSWORD"] else "")
    return f"postgresql://{auth}@{conf['HOST']}:{conf['PORT'] or 5432}/{conf['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_mta_pipe_exit_codes_and_stderr(tmp_path):
    """The real command in a process, as an MTA runs it: status and stderr."""
    from tests.factories import make_automation

    make_automation(
        "builtin.echo",
        triggers=[{"kind": "email", "address": "invoices@runs.example"}],
    )
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "MEDIA_ROOT": str(tmp_path / "media"),
    }

    def pipe(name):
        with open(Path(__file__).parent / "messages" / name, "rb") as stdin:
            return subprocess.run(
                [sys.executable, "manage.py", "receive_email"],
                check=False,
                stdin=stdin,
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=env,
                timeout=60,
            )

    accepted = pipe("invoice_multipart.eml")
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted" in accepted.stdout
    duplicate = pipe("invoice_multipart.eml")
    assert duplicate.returncode == 0 and "duplicate" in duplicate.stdout
    garbage = pipe("malformed_binary.eml")
    assert garbage.returncode == 65
    assert "rejected (unparseable)" in garbage.stderr
    nobody = pipe("plain_cc.eml")
    assert nobody.returncode == 67 and "no_automation" in nobody.stderr
    assert Run.objects.count() == 1
    assert len(list((tmp_path / "media").rglob("*.pdf"))) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_message_start_one_run(settings):
    """Several MTA processes delivering the same message at once: the unique claim
    lets exactly one run through, the others answer duplicate."""
    import threading

    from django.db import connections

    from runs.mail.intake import email_receive
    from tests.factories import make_automation

    make_automation(
        "builtin.echo",
        triggers=[{"kind": "email", "address": "invoices@runs.example"}],
    )
    raw = eml("invoice_multipart.eml")
    start, outcomes, errors = threading.Barrier(4), [], []

    def deliver():
        try:
            start.wait()
            outcomes.append(email_receive(raw=raw, source="stdin").outcome)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(outcomes) == ["accepted", "duplicate", "duplicate", "duplicate"]
    assert Run.objects.count() == 1 and WorkItemFile.objects.count() == 2
    assert len(stored_files(settings)) == 2
