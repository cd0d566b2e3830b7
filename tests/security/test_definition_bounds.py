"""Findings 5, 6 and 11 of the security review, and the `senders` entry without `@`
(issue 13): definitions an Author uploads are bounded, and a bad one is refused at
import naming the field, never committed to break scheduling later."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from automations.definition_files import DefinitionsFileError, definitions_parse
from automations.definitions import DefinitionError, automation_import
from automations.models import Automation, Trigger
from automations.services import schedules_sync

pytestmark = pytest.mark.django_db


def definition(*triggers, slug="bounded"):
    return {
        "slug": slug,
        "name": "Bounded",
        "publish": True,
        "steps": [{"name": "a", "action": "builtin.echo"}],
        "triggers": list(triggers),
    }


# Finding 5: a cron with no next fire time -------------------------------------


@pytest.mark.parametrize(
    "cron",
    ["0 0 30 2 *", "0 0 31 4 *", "* * * * * *", "* * * * * * *"],
)
def test_a_cron_that_never_fires_is_refused_at_import(cron):
    with pytest.raises(DefinitionError, match=r"triggers\[1\]\.cron: ") as caught:
        automation_import(
            definition({"kind": "manual"}, {"kind": "schedule", "cron": cron})
        )
    assert repr(cron) in str(caught.value)
    assert not Automation.objects.exists()


def test_a_cron_that_fires_rarely_is_taken():
    result = automation_import(definition({"kind": "schedule", "cron": "0 0 29 2 *"}))
    assert result.automation.triggers.get().cron == "0 0 29 2 *"


def _stored_bad_trigger():
    """A trigger stored before import refused such crons (or written by hand)."""
    bad = automation_import(
        definition({"kind": "schedule", "cron": "0 6 * * 1"}, slug="bad")
    ).automation
    Trigger.objects.filter(automation=bad).update(cron="0 0 30 2 *")
    return bad


def test_schedule_sync_isolates_a_bad_stored_trigger(
    django_capture_on_commit_callbacks,
):
    from django_q.models import Schedule

    bad = _stored_bad_trigger()
    Schedule.objects.all().delete()
    Trigger.objects.filter(automation=bad).update(schedule=None)
    with django_capture_on_commit_callbacks(execute=True):
        good = automation_import(
            definition({"kind": "schedule", "cron": "0 7 * * *"}, slug="good")
        ).automation
    # the import committed and its schedule exists, the bad trigger is reported
    trigger = good.triggers.get()
    assert trigger.schedule is not None and trigger.schedule.cron == "0 7 * * *"
    counts = schedules_sync()
    assert counts["failed"] == 1
    assert counts["created"] == 0
    assert not Trigger.objects.get(automation=bad).schedule


def test_housekeeping_goes_on_past_a_bad_stored_trigger(caplog):
    from django_q.models import Schedule

    from runs.tasks import housekeeping

    _stored_bad_trigger()
    Schedule.objects.all().delete()
    Trigger.objects.update(schedule=None)
    report = housekeeping()
    assert report["schedules"]["failed"] == 1
    assert "retention" in report and "mail_schedules" in report
    assert Schedule.objects.filter(name="runs:housekeeping").exists()


# Finding 6: YAML aliases and size --------------------------------------------

# Each level is nine of the one before: 9**6 strings once expanded (the review's
# 517 bytes went to 9**9, 844 MB; kept small here in case the refusal regresses).
BOMB = b"""\
slug: bomb
name: Bomb
steps:
- name: a
  action: builtin.echo
  parameters:
    a: &a ["x","x","x","x","x","x","x","x","x"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]
"""


def test_yaml_aliases_are_refused():
    with pytest.raises(DefinitionsFileError, match="alias"):
        definitions_parse(BOMB)


def test_a_single_harmless_alias_is_refused_too():
    text = b"slug: s\nname: &n N\ndescription: *n\nsteps: [{name: a, action: x}]\n"
    with pytest.raises(DefinitionsFileError, match="line 3"):
        definitions_parse(text)


def test_definitions_over_the_size_limit_are_refused(settings):
    settings.RUNS_MAX_DEFINITIONS_BYTES = 1000
    raw = json.dumps(definition() | {"description": "x" * 1000}).encode()
    with pytest.raises(DefinitionsFileError, match="RUNS_MAX_DEFINITIONS_BYTES"):
        definitions_parse(raw)
    with pytest.raises(DefinitionsFileError, match="RUNS_MAX_DEFINITIONS_BYTES"):
        definitions_parse(raw.decode())  # the admin's confirm step posts text


def test_admin_upload_refuses_the_bomb(login, author):
    upload = io.BytesIO(BOMB)
    upload.name = "bomb.yaml"
    response = login(author).post(
        reverse("admin:automations_automation_import_definitions"), {"file": upload}
    )
    assert response.status_code == 200
    assert b"alias" in response.content
    assert not Automation.objects.exists()


def test_admin_upload_refuses_an_oversized_file_unread(login, author, settings):
    settings.RUNS_MAX_DEFINITIONS_BYTES = 100
    upload = io.BytesIO(b"x" * 101)
    upload.name = "big.json"
    response = login(author).post(
        reverse("admin:automations_automation_import_definitions"), {"file": upload}
    )
    assert b"RUNS_MAX_DEFINITIONS_BYTES" in response.content


def test_import_automations_refuses_the_bomb_and_big_files(tmp_path, settings):
    path = tmp_path / "bomb.yaml"
    path.write_bytes(BOMB)
    with pytest.raises(CommandError, match="alias"):
        call_command("import_automations", str(path))
    settings.RUNS_MAX_DEFINITIONS_BYTES = 100
    path = tmp_path / "big.json"
    path.write_text(json.dumps(definition() | {"description": "x" * 200}))
    with pytest.raises(CommandError, match="RUNS_MAX_DEFINITIONS_BYTES"):
        call_command("import_automations", str(path))
    assert not Automation.objects.exists()


def test_import_automations_still_reads_yaml_documents(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(
        "slug: one\nname: One\nsteps: [{name: a, action: builtin.echo}]\n---\n"
        "slug: two\nname: Two\nsteps: [{name: a, action: builtin.echo}]\n"
    )
    call_command("import_automations", str(path), stdout=io.StringIO())
    assert set(Automation.objects.values_list("slug", flat=True)) == {"one", "two"}


# Finding 11: subject patterns checked at import -------------------------------


@pytest.mark.parametrize(
    ("subject", "why"),
    [("(unclosed", "not a valid pattern"), ("a" * 501, "at most 500")],
)
def test_bad_subject_patterns_are_refused_at_import(subject, why):
    trigger = {"kind": "email", "address": "in@runs.example", "subject": subject}
    with pytest.raises(DefinitionError, match=rf"triggers\[0\]\.subject: {why}"):
        automation_import(definition(trigger))


# Issue 13: a `senders` entry without `@` --------------------------------------


def test_a_sender_entry_without_at_is_refused_naming_it():
    trigger = {
        "kind": "email",
        "address": "in@runs.example",
        "senders": ["ok@acme.example", "bank.example"],
    }
    with pytest.raises(
        DefinitionError, match=r"triggers\[0\]\.senders\[1\]: 'bank.example'.*@bank"
    ):
        automation_import(definition(trigger))
