"""Definitions as code: import, export, versions, and bad files that import nothing."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from automations.definitions import (
    DefinitionError,
    automation_export,
    automation_import,
)
from automations.models import (
    Automation,
    AutomationStatus,
    AutomationVersion,
    Step,
    Trigger,
)
from automations.services import AutomationStateError, VersionFrozen, version_publish

CONTRACT_EXAMPLE = {
    "slug": "kyc-review",
    "name": "Weekly KYC review",
    "publish": True,
    "run_timeout_seconds": 3600,
    "steps": [
        {
            "name": "select",
            "action": "builtin.select_subjects",
            "parameters": {"source": "demo.accounts_due"},
        },
        {
            "name": "validate",
            "action": "builtin.require",
            "parameters": {"fields": ["account"]},
        },
        {
            "name": "notify",
            "action": "builtin.http_request",
            "batch_size": 50,
            "concurrency": 2,
            "max_attempts": 3,
            "parameters": {"url": "http://127.0.0.1:9000/hook", "method": "POST"},
        },
    ],
    "triggers": [{"kind": "schedule", "cron": "0 6 * * 1"}, {"kind": "api"}],
}


@pytest.fixture
def imported(db):
    return automation_import(CONTRACT_EXAMPLE)


def test_contract_example_imports_and_publishes(imported):
    a = imported.automation
    assert (a.slug, a.status, imported.version.number) == (
        "kyc-review",
        AutomationStatus.PUBLISHED,
        1,
    )
    assert (
        imported.version.is_published and imported.version.run_timeout_seconds == 3600
    )
    steps = list(
        imported.version.steps.order_by("order").values_list(
            "name", "batch_size", "concurrency", "max_attempts"
        )
    )
    assert steps == [
        ("select", 100, 1, 1),
        ("validate", 100, 1, 1),
        ("notify", 50, 2, 3),
    ]
    assert sorted(a.triggers.values_list("kind", flat=True)) == ["api", "schedule"]


def test_schedule_trigger_is_mirrored_in_django_q(imported):
    from django_q.models import Schedule

    from automations.services import schedules_sync

    schedules_sync()
    trigger = Trigger.objects.get(kind="schedule")
    assert trigger.schedule.cron == "0 6 * * 1"
    assert trigger.schedule.func == "runs.tasks.schedule_fire"
    from automations.services import automation_retire

    automation_retire(imported.automation)
    schedules_sync()
    assert not Schedule.objects.filter(func="runs.tasks.schedule_fire").exists()


def test_same_definition_again_changes_nothing(imported):
    again = automation_import(CONTRACT_EXAMPLE)
    assert not again.new_version and again.version == imported.version
    assert AutomationVersion.objects.count() == 1


def test_changed_definition_becomes_a_new_version(imported):
    changed = json.loads(json.dumps(CONTRACT_EXAMPLE))
    changed["steps"][2]["batch_size"] = 25
    changed["publish"] = False
    result = automation_import(changed)
    assert (
        result.new_version
        and result.version.number == 2
        and not result.version.is_published
    )
    # the published v1 is untouched and still what triggers use
    assert imported.automation.latest_published_version().number == 1


def test_max_in_flight_imports_exports_and_its_default_keeps_the_version(imported):
    same = json.loads(json.dumps(CONTRACT_EXAMPLE))
    same["steps"][2]["max_in_flight"] = 1  # the default, written out
    assert not automation_import(same).new_version
    changed = json.loads(json.dumps(CONTRACT_EXAMPLE))
    changed["steps"][2]["max_in_flight"] = 16
    result = automation_import(changed)
    assert result.new_version
    assert result.version.steps.get(name="notify").max_in_flight == 16
    exported = automation_export(result.automation)
    assert exported["steps"][2]["max_in_flight"] == 16
    assert "max_in_flight" not in exported["steps"][0]
    assert not automation_import(exported).new_version


def test_export_round_trips(imported):
    exported = automation_export(imported.automation)
    assert exported["steps"] == CONTRACT_EXAMPLE["steps"]
    assert exported["triggers"] == CONTRACT_EXAMPLE["triggers"]
    assert not automation_import(exported).new_version


def test_published_version_steps_are_frozen(imported):
    step = imported.version.steps.first()
    step.batch_size = 7
    with pytest.raises(VersionFrozen, match="is published"):
        step.save()
    with pytest.raises(VersionFrozen):
        step.delete()
    with pytest.raises(VersionFrozen):
        Step.objects.create(
            version=imported.version, order=9, name="late", action="builtin.echo"
        )
    assert Step.objects.get(pk=step.pk).batch_size == 100


def test_publishing_twice_is_refused(imported):
    with pytest.raises(AutomationStateError, match="already published"):
        version_publish(imported.version)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d.pop("slug"), "slug: required"),
        (lambda d: d.update(slug="bad slug!"), "slug: required"),
        (lambda d: d.update(steps=[]), "steps: required"),
        (
            lambda d: d["steps"][1].update(action="no.such.action"),
            r"steps\[1\].action: no action is registered",
        ),
        (
            lambda d: d["steps"][2].update(batch_size=0),
            r"steps\[2\].batch_size: must be an integer >= 1",
        ),
        (lambda d: d["steps"][2].update(concurrency="two"), r"steps\[2\].concurrency"),
        (
            lambda d: d["steps"][2].update(batch_size=50_000),
            r"steps\[2\].batch_size: at most 5000",
        ),
        (
            lambda d: d["steps"][0].update(colour="red"),
            r"steps\[0\]: unknown field\(s\) colour",
        ),
        (
            lambda d: d["steps"][0].update(condition={"field": "x", "op": "like"}),
            r"steps\[0\].condition.op: unknown operator",
        ),
        (lambda d: d["steps"][1].update(name="select"), "duplicate step name"),
        (
            lambda d: d["triggers"].append(
                {"kind": "schedule", "cron": "every monday"}
            ),
            r"triggers\[2\].cron: not a valid cron",
        ),
        (
            lambda d: d["triggers"].append({"kind": "email"}),
            r"triggers\[2\].address: required",
        ),
        (
            lambda d: d["triggers"].append({"kind": "pigeon"}),
            r"triggers\[2\].kind: must be one of",
        ),
        (lambda d: d.update(publish="yes"), "publish: must be true or false"),
        (lambda d: d.update(run_timeout_seconds=-5), "run_timeout_seconds"),
        (lambda d: d.update(owners=["nobody"]), "owners: no user named 'nobody'"),
        (lambda d: d.update(sla_seconds=0), "sla_seconds: must be an integer >= 1"),
        (lambda d: d.update(sla_seconds=True), "sla_seconds: must be an integer"),
        (lambda d: d.update(sla_seconds="60"), "sla_seconds: must be an integer"),
        (lambda d: d.update(sla_seconds=2**40), "sla_seconds: at most 31622400"),
        (
            lambda d: d["steps"][2].update(max_in_flight=0),
            r"steps\[2\].max_in_flight: must be an integer >= 1",
        ),
        (
            lambda d: d["steps"][2].update(max_in_flight="8"),
            r"steps\[2\].max_in_flight: must be an integer",
        ),
        (
            lambda d: d["steps"][2].update(max_in_flight=True),
            r"steps\[2\].max_in_flight: must be an integer",
        ),
        (
            lambda d: d["steps"][2].update(batch_size=5000, max_in_flight=257),
            r"steps\[2\].max_in_flight: at most 256",
        ),
        (
            lambda d: d["steps"][2].update(max_in_flight=51),
            r"steps\[2\].max_in_flight: at most the step's batch_size \(50\)",
        ),
        (
            lambda d: d["steps"].append(
                {
                    "name": "robot",
                    "action": "builtin.robot",
                    "parameters": {"command": ["true"]},
                    "max_in_flight": 2,
                }
            ),
            r"steps\[3\].max_in_flight: a robot step takes its items one at a time",
        ),
    ],
)
def test_bad_definition_names_the_field_and_imports_nothing(db, mutate, message):
    definition = json.loads(json.dumps(CONTRACT_EXAMPLE))
    mutate(definition)
    with pytest.raises(DefinitionError, match=message):
        automation_import(definition)
    assert not Automation.objects.exists() and not Step.objects.exists()


def test_command_imports_json_and_yaml_and_exports(db, tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps(CONTRACT_EXAMPLE))
    (tmp_path / "b.yaml").write_text(
        "slug: hello\nname: Hello\nsteps:\n  - name: say\n    action: builtin.echo\n"
    )
    call_command(
        "import_automations", str(tmp_path / "a.json"), str(tmp_path / "b.yaml")
    )
    out = capsys.readouterr().out
    assert "kyc-review: v1, automation created, new version, published" in out
    assert "hello: v1, automation created, new version" in out
    call_command("export_automations", "--format", "json")
    exported = json.loads(capsys.readouterr().out)
    assert [d["slug"] for d in exported] == ["hello", "kyc-review"]


def test_command_with_one_bad_file_imports_nothing(db, tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(CONTRACT_EXAMPLE))
    (tmp_path / "bad.json").write_text(
        '{"slug": "x", "name": "X", "steps": [{"name": "a"}]}'
    )
    with pytest.raises(
        CommandError,
        match=r"bad.json: steps\[0\].action: required .*nothing was imported",
    ):
        call_command(
            "import_automations",
            str(tmp_path / "good.json"),
            str(tmp_path / "bad.json"),
        )
    assert not Automation.objects.exists()


def test_command_reports_unparseable_files(db, tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(CommandError, match="broken.json: not valid json"):
        call_command("import_automations", str(tmp_path / "broken.json"))


def test_sla_seconds_imports_exports_and_clears_without_a_new_version(db):
    definition = {**CONTRACT_EXAMPLE, "sla_seconds": 900}
    result = automation_import(definition)
    assert result.automation.sla_seconds == 900
    assert automation_export(result.automation)["sla_seconds"] == 900
    # the SLA is the automation's, not the version's: no new version for it
    again = automation_import({**CONTRACT_EXAMPLE, "sla_seconds": 1800})
    assert not again.new_version and again.automation.sla_seconds == 1800
    cleared = automation_import(CONTRACT_EXAMPLE)
    assert cleared.automation.sla_seconds is None
    assert "sla_seconds" not in automation_export(cleared.automation)
