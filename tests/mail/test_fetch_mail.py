"""`fetch_mail` against a real IMAP server (dovecot) started by the tests."""

import io

import pytest
from django.core.management import CommandError, call_command
from django_q.models import Schedule
from imapclient import IMAPClient

from runs.mail.imap import PROCESSED, REJECTED
from runs.mail.models import InboundMessage
from runs.models import Run, WorkItemFile

from .conftest import eml, stored_files
from .dovecot import Dovecot, dovecot_binary

pytestmark = pytest.mark.skipif(
    dovecot_binary() is None,
    reason="dovecot is not installed (apt-get install dovecot-imapd; ./dev test "
    "installs it): the IMAP poller cannot be tested against a real server",
)

SEEN, FLAGGED = b"\\Seen", b"\\Flagged"


@pytest.fixture
def imap_server(settings):
    with Dovecot(users={"robot": "s3cret"}) as server:
        settings.RUNS_IMAP_HOST = "127.0.0.1"
        settings.RUNS_IMAP_PORT = server.port
        settings.RUNS_IMAP_SSL = False
        settings.RUNS_IMAP_USER = "robot"
        settings.RUNS_IMAP_PASSWORD = "s3cret"
        settings.RUNS_IMAP_FOLDER = "INBOX"
        yield server


@pytest.fixture
def mailbox(imap_server):
    """A client of the test mailbox, to deliver messages and read their flags."""
    client = IMAPClient("127.0.0.1", port=imap_server.port, ssl=False)
    client.login("robot", "s3cret")
    client.select_folder("INBOX")

    def deliver(*names):
        for name in names:
            client.append("INBOX", eml(name))

    def flags() -> dict[str, set]:
        client.noop()
        found = client.fetch(
            client.search("ALL"), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]
        )
        result = {}
        for uid, data in sorted(found.items()):
            subject = data[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip()
            result[f"{uid}:{subject}"] = set(data[b"FLAGS"])
        return result

    client.deliver, client.flags_by_message = deliver, flags
    yield client
    client.logout()


def fetch(*args) -> str:
    out = io.StringIO()
    call_command("fetch_mail", *args, stdout=out)
    return out.getvalue()


def test_fetch_starts_runs_marks_and_flags_and_never_repeats(
    invoices, mailbox, settings
):
    mailbox.deliver(
        "invoice_multipart.eml",  # accepted, 2 attachments
        "non_ascii_headers.eml",  # accepted, 1 attachment
        "malformed_no_from.eml",  # rejected: unparseable
        "plain_cc.eml",  # rejected: no automation for alerts@runs.example
    )

    out = fetch()

    assert "fetched 4: 2 accepted, 0 duplicate, 2 rejected, 0 error(s)" in out
    runs = Run.objects.order_by("number")
    assert [r.work_items.get().payload["subject"] for r in runs] == [
        "Invoice 2026-0042",
        "Rechnung für März € 99",
    ]
    assert {r.trigger_kind for r in runs} == {"email"}
    assert WorkItemFile.objects.count() == 3 and len(stored_files(settings)) == 3
    flags = list(mailbox.flags_by_message().values())
    assert len(flags) == 4  # nothing deleted or moved
    assert {SEEN, PROCESSED} <= flags[0] and FLAGGED not in flags[0]
    assert {SEEN, PROCESSED} <= flags[1]
    for rejected in flags[2:]:
        assert {FLAGGED, REJECTED} <= rejected and PROCESSED not in rejected
    assert sorted(
        InboundMessage.objects.filter(source="imap").values_list("outcome", "reason")
    ) == [
        ("accepted", ""),
        ("accepted", ""),
        ("rejected", "no_automation"),
        ("rejected", "unparseable"),
    ]

    # a second poll finds nothing new
    assert "fetched 0:" in fetch()
    assert Run.objects.count() == 2

    # the same message delivered again (a second copy in the mailbox) is harmless
    mailbox.deliver("invoice_multipart.eml")
    assert "fetched 1: 0 accepted, 1 duplicate, 0 rejected" in fetch()
    assert Run.objects.count() == 2 and WorkItemFile.objects.count() == 3
    assert {SEEN, PROCESSED} <= list(mailbox.flags_by_message().values())[-1]


def test_message_taken_but_not_marked_is_a_duplicate_next_time(invoices, mailbox):
    """A crash between the run's commit and the flags: the next poll fetches the
    message again and starts nothing."""
    mailbox.deliver("invoice_multipart.eml")
    assert "1 accepted" in fetch()
    uid = mailbox.search("ALL")[0]
    mailbox.remove_flags([uid], [SEEN, PROCESSED])

    assert "fetched 1: 0 accepted, 1 duplicate" in fetch()
    assert Run.objects.count() == 1


def test_message_too_large_is_flagged_without_downloading_it(
    invoices, mailbox, settings
):
    settings.RUNS_EMAIL_MAX_MESSAGE_BYTES = 800
    mailbox.deliver("invoice_multipart.eml", "html_only.eml")

    assert "fetched 2: 1 accepted, 0 duplicate, 1 rejected" in fetch()
    record = InboundMessage.objects.get(outcome="rejected")
    assert record.reason == "too_large"
    assert record.message_id == "<20261116091401.4242@acme.example>"
    assert record.size == len(eml("invoice_multipart.eml"))  # RFC822.SIZE
    flags = list(mailbox.flags_by_message().values())
    assert {FLAGGED, REJECTED} <= flags[0]
    assert Run.objects.get().work_items.get().payload["subject"] == (
        "Invoice 2026-0043 (HTML)"
    )


def test_database_error_leaves_the_message_for_the_next_poll(
    invoices, mailbox, monkeypatch
):
    from django.db import OperationalError

    from runs.mail import imap

    def broken(**kwargs):
        raise OperationalError("database is locked")

    mailbox.deliver("invoice_multipart.eml")
    monkeypatch.setattr(imap, "email_receive", broken)
    assert "fetched 0: 0 accepted, 0 duplicate, 0 rejected, 1 error(s)" in fetch()
    flags = next(iter(mailbox.flags_by_message().values()))
    assert not flags & {SEEN, FLAGGED, PROCESSED, REJECTED}

    monkeypatch.undo()
    assert "1 accepted" in fetch()


def test_wrong_password_is_a_clear_error(invoices, imap_server, settings):
    settings.RUNS_IMAP_PASSWORD = "wrong"
    with pytest.raises(CommandError, match="IMAP error"):
        fetch()


def test_unreachable_server_is_a_clear_error(settings):
    settings.RUNS_IMAP_HOST = "127.0.0.1"
    settings.RUNS_IMAP_PORT = 1  # nothing listens there
    settings.RUNS_IMAP_SSL = False
    with pytest.raises(CommandError, match="cannot reach the IMAP server"):
        fetch()


def test_not_configured(settings):
    settings.RUNS_IMAP_HOST = ""
    with pytest.raises(CommandError, match="RUNS_IMAP_HOST is not set"):
        fetch()


def test_schedule_follows_the_configuration(db, settings):
    settings.RUNS_IMAP_HOST = "imap.example"
    settings.RUNS_IMAP_POLL_MINUTES = 5
    assert "fetch_mail: scheduled" in fetch("--schedule")
    poll = Schedule.objects.get(name="runs:fetch_mail")
    assert (poll.func, poll.minutes) == ("runs.mail.tasks.fetch_mail", 5)
    assert Schedule.objects.filter(
        name="runs:notifications", func="runs.mail.tasks.notifications_send_due"
    ).exists()

    settings.RUNS_IMAP_HOST = ""
    assert "fetch_mail: off" in fetch("--schedule")
    assert not Schedule.objects.filter(name="runs:fetch_mail").exists()


def test_scheduled_task_polls_the_mailbox(invoices, mailbox):
    from runs.mail.tasks import fetch_mail

    mailbox.deliver("invoice_multipart.eml")
    assert fetch_mail().startswith("fetched 1: 1 accepted")
    assert Run.objects.count() == 1
