"""Findings 7, 8 and 11 of the security review: e-mail from anyone, bounded.

7: a `To:` with 25k addresses took 6 s and 300 MB, 20,000 one-byte attachments wrote
20,000 files, even for an unknown recipient: the header size, the address count and
the MIME part count are checked on the raw bytes before the full parse.
8: a lone surrogate in a From name (bytes that are not UTF-8) failed the save, and the
MTA retried the poison message forever: text is normalised.
11: `^(a+)+$` against 33 characters ran for minutes under `re` (`^(a|aa)+$` still does
under `regex`): patterns are matched
with a timeout.
"""

import pytest

from runs.mail import intake
from runs.mail.models import InboundMessage
from runs.models import Run, WorkItem, WorkItemFile
from tests.mail.conftest import receive, stored_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoices(automation):
    return automation(
        "builtin.echo",
        slug="invoice-intake",
        triggers=[{"kind": "email", "address": "invoices@runs.example"}],
    )


@pytest.fixture
def no_full_parse(monkeypatch):
    """Fail the test if the message is parsed in full."""

    def refuse(*args, **kwargs):
        raise AssertionError("the message was parsed in full")

    monkeypatch.setattr(intake, "message_parse", refuse)


def message(*, to="invoices@runs.example", headers="", body="hello\r\n") -> bytes:
    return (
        "From: Ann <ann@acme.example>\r\n"
        f"To: {to}\r\n"
        "Subject: Invoice 1\r\n"
        "Message-ID: <m1@acme.example>\r\n"
        f"{headers}"
        "\r\n"
        f"{body}"
    ).encode()


def _refused(settings, reason="too_large") -> InboundMessage:
    assert Run.objects.count() == 0
    assert WorkItem.objects.count() == 0
    assert WorkItemFile.objects.count() == 0
    assert stored_files(settings) == []
    record = InboundMessage.objects.get()
    assert record.outcome == "rejected" and record.reason == reason
    return record


def test_25k_recipients_are_refused_before_the_parse(invoices, settings, no_full_parse):
    to = ", ".join(f"user{i}@nowhere.example" for i in range(25_000))
    code, _, error = receive(message(to=to))
    assert code == 65  # EX_DATAERR: bounced, not retried
    assert "RUNS_EMAIL_MAX_HEADER_BYTES" in error
    record = _refused(settings)
    assert "RUNS_EMAIL_MAX_HEADER_BYTES" in record.detail
    assert record.sender == "ann@acme.example"


def test_too_many_addresses_are_refused_before_the_parse(
    invoices, settings, no_full_parse
):
    settings.RUNS_EMAIL_MAX_ADDRESSES = 50
    to = ", ".join(["invoices@runs.example"] + [f"u{i}@x.example" for i in range(60)])
    code, _, error = receive(message(to=to))
    assert code == 65
    record = _refused(settings)
    assert "62 addresses" in record.detail  # From too
    assert "RUNS_EMAIL_MAX_ADDRESSES" in error


def test_an_address_count_within_the_limit_is_taken(invoices, settings):
    settings.RUNS_EMAIL_MAX_ADDRESSES = 50
    to = ", ".join(["invoices@runs.example"] + [f"u{i}@x.example" for i in range(40)])
    code, _, _ = receive(message(to=to))
    assert code == 0
    assert Run.objects.count() == 1


MIXED = 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="{}"\r\n'


def _multipart(parts: int) -> bytes:
    body = ["--XYZ\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"]
    body += [
        f"--XYZ\r\nContent-Type: application/octet-stream\r\n"
        f'Content-Disposition: attachment; filename="f{i}.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nQQ==\r\n"
        for i in range(parts - 1)
    ]
    return message(
        headers=MIXED.format("XYZ"),
        body="".join(body) + "--XYZ--\r\n",
    )


def test_20000_attachments_write_no_file(invoices, settings, no_full_parse):
    code, _, error = receive(_multipart(20_000))
    assert code == 65
    record = _refused(settings)
    assert "RUNS_EMAIL_MAX_PARTS" in record.detail and "RUNS_EMAIL_MAX_PARTS" in error


def test_parts_within_the_limit_are_taken(invoices, settings):
    settings.RUNS_EMAIL_MAX_PARTS = 10
    assert receive(_multipart(10))[0] == 0
    assert WorkItemFile.objects.count() == 9
    code, _, error = receive(_multipart(11).replace(b"<m1@", b"<m2@"))
    assert code == 65 and "11 MIME parts" in error
    assert Run.objects.count() == 1


def test_nested_parts_are_counted(invoices, settings, no_full_parse):
    settings.RUNS_EMAIL_MAX_PARTS = 4
    inner = "".join(
        f"--IN\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(4)
    )
    body = (
        '--OUT\r\nContent-Type: multipart/alternative; boundary="IN"\r\n\r\n'
        f"{inner}--IN--\r\n--OUT--\r\n"
    )
    raw = message(
        headers=MIXED.format("OUT"),
        body=body,
    )
    assert receive(raw)[0] == 65
    assert "5 MIME parts" in _refused(settings).detail


# Finding 8 ---------------------------------------------------------------------


def test_a_from_name_that_is_not_utf8_is_taken_with_replacement_characters(
    invoices, settings
):
    raw = message().replace(b"From: Ann", b"From: Ann \xff\xfe")
    code, _, error = receive(raw)
    assert code == 0, error  # not 75: the MTA would retry it forever
    payload = WorkItem.objects.get().payload
    assert payload["from_name"] == "Ann \ufffd\ufffd"
    assert payload["from"] == "ann@acme.example"


def test_an_encoded_lone_surrogate_is_taken_with_replacement_characters(
    invoices, settings
):
    # =?utf-8?b?7aCA?= is the UTF-8 encoding of U+D800, which UTF-8 forbids
    raw = message(
        headers="X-Note: x\r\n",
        body="hello\r\n",
    ).replace(b"From: Ann", b"From: =?utf-8?b?7aCA?= Ann")
    raw = raw.replace(b"Subject: Invoice 1", b"Subject: =?utf-8?b?7aCA?=")
    code, _, error = receive(raw)
    assert code == 0, error
    payload = WorkItem.objects.get().payload
    assert "\ud800" not in payload["from_name"] and "\ufffd" in payload["from_name"]
    assert "\ud800" not in payload["subject"]


def test_a_body_and_file_name_that_are_not_utf8_are_taken(invoices, settings):
    raw = message(
        headers=MIXED.format("B"),
        body="BODY",
    ).replace(
        b"BODY",
        b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbad \xff\r\n"
        b"--B\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="r\xe9sum\xe9.pdf"\r\n\r\n'
        b"x\r\n--B--\r\n",
    )
    code, _, error = receive(raw)
    assert code == 0, error
    item = WorkItem.objects.get()
    assert item.payload["text"].startswith("bad \ufffd")
    name = item.files.get().name
    assert name == "r\ufffdsum\ufffd.pdf"


def test_a_stored_sender_entry_without_at_matches_as_a_domain(automation, settings):
    """Import refuses it now (test_definition_bounds); rows stored before match the
    domain instead of silently never matching (issue 13)."""
    from automations.models import Trigger

    auto = automation(
        "builtin.echo",
        triggers=[{"kind": "email", "address": "invoices@runs.example"}],
    )
    Trigger.objects.filter(automation=auto).update(senders=["acme.example"])
    assert receive(message())[0] == 0
    assert Run.objects.count() == 1


# Finding 11 --------------------------------------------------------------------


def test_a_catastrophic_subject_pattern_times_out_as_a_mismatch(automation, settings):
    """A stored pattern that slipped past import (older rows) is matched with a
    timeout: the message is refused as a mismatch, and the next poll does not hang
    on it again."""
    from automations.models import Trigger

    auto = automation(
        "builtin.echo",
        triggers=[{"kind": "email", "address": "invoices@runs.example"}],
    )
    Trigger.objects.filter(automation=auto).update(subject_pattern="^(a|aa)+$")
    settings.RUNS_EMAIL_SUBJECT_TIMEOUT_SECONDS = 0.05
    raw = message().replace(b"Subject: Invoice 1", b"Subject: " + b"a" * 40 + b"!")
    code, _, error = receive(raw)
    assert code == 67, error
    record = InboundMessage.objects.get()
    assert record.reason == "subject_mismatch"
    assert "timed out" in record.detail


def test_a_bound_that_is_no_bound_is_refused_by_a_system_check(settings):
    from runs.mail.checks import mail_settings_valid

    settings.RUNS_EMAIL_MAX_PARTS = 0
    settings.RUNS_EMAIL_SUBJECT_TIMEOUT_SECONDS = -1
    messages = [e.msg for e in mail_settings_valid()]
    assert any("RUNS_EMAIL_MAX_PARTS" in m for m in messages)
    assert any("RUNS_EMAIL_SUBJECT_TIMEOUT_SECONDS" in m for m in messages)
