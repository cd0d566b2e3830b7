"""Writes on automation definitions: publish, retire, and schedule sync."""

from django.db import transaction
from django.utils import timezone

from .models import Automation, AutomationStatus, AutomationVersion, Trigger, TriggerKind


class VersionFrozen(Exception):
    """A published version's steps cannot change: make a new version instead."""


class AutomationStateError(Exception):
    pass


def _record(verb, obj, actor, **kwargs):
    from runs import ledger
    from runs.evidence.config import current_actor

    label = ""
    if actor is None:  # e.g. publish from an import: who runs it (request, command)
        actor, label = current_actor()
    ledger.append(
        events=[
            ledger.audit_event(
                verb=verb, obj=obj, actor=actor, actor_label=label, **kwargs
            )
        ]
    )


def version_publish(version: AutomationVersion, *, actor=None) -> AutomationVersion:
    """Freeze `version` and make it the one schedule, e-mail and API triggers use."""
    with transaction.atomic():
        changed = AutomationVersion.objects.filter(
            pk=version.pk, published_at__isnull=True
        ).update(published_at=timezone.now())
        if not changed:
            raise AutomationStateError(f"{version} is already published")
        automation = version.automation
        if automation.status == AutomationStatus.RETIRED:
            raise AutomationStateError(f"{automation.slug} is retired")
        before = automation.status
        Automation.objects.filter(pk=automation.pk).update(
            status=AutomationStatus.PUBLISHED, updated_at=timezone.now()
        )
        automation.status = AutomationStatus.PUBLISHED
        version.refresh_from_db(fields=["published_at"])
        _record(
            "version.published",
            version,
            actor,
            before={"automation_status": before},
            after={"number": version.number, "automation_status": "published"},
        )
        transaction.on_commit(schedules_sync)
    return version


def automation_retire(automation: Automation, *, actor=None, reason: str = "") -> None:
    """Retire an automation: no trigger starts it any more; its runs stay."""
    with transaction.atomic():
        changed = Automation.objects.filter(pk=automation.pk).exclude(
            status=AutomationStatus.RETIRED
        ).update(status=AutomationStatus.RETIRED, updated_at=timezone.now())
        if not changed:
            raise AutomationStateError(f"{automation.slug} is already retired")
        _record(
            "automation.retired",
            automation,
            actor,
            before={"status": automation.status},
            after={"status": "retired"},
            reason=reason,
        )
        automation.status = AutomationStatus.RETIRED
        transaction.on_commit(schedules_sync)


SCHEDULE_TASK = "runs.tasks.schedule_fire"


def schedules_sync() -> dict:
    """Mirror enabled schedule triggers of published automations into django-q2.

    One django-q2 `Schedule` per trigger (cron); a trigger that is disabled, or whose
    automation is not published, loses its schedule. Returns counts of what changed.
    """
    from django_q.models import Schedule

    counts = {"created": 0, "updated": 0, "deleted": 0}
    wanted = Trigger.objects.filter(
        kind=TriggerKind.SCHEDULE,
        enabled=True,
        automation__status=AutomationStatus.PUBLISHED,
    ).select_related("automation", "schedule")
    with transaction.atomic():
        keep = set()
        for trigger in wanted:
            schedule = trigger.schedule
            name = f"runs:trigger:{trigger.pk}"
            if schedule is None:
                schedule = Schedule.objects.create(
                    name=name,
                    func=SCHEDULE_TASK,
                    args=repr((trigger.pk,)),
                    schedule_type=Schedule.CRON,
                    cron=trigger.cron,
                    repeats=-1,
                )
                Trigger.objects.filter(pk=trigger.pk).update(schedule=schedule)
                counts["created"] += 1
            elif schedule.cron != trigger.cron or schedule.func != SCHEDULE_TASK:
                schedule.cron = trigger.cron
                schedule.func = SCHEDULE_TASK
                schedule.next_run = timezone.now()
                schedule.save()
                counts["updated"] += 1
            keep.add(schedule.pk)
        stale = Schedule.objects.filter(func=SCHEDULE_TASK).exclude(pk__in=keep)
        counts["deleted"] = stale.count()
        stale.delete()
    return counts


class DefinitionsFileError(ValueError):
    """A definitions file that cannot be read at all (not JSON/YAML, too big)."""


MAX_DEFINITIONS_BYTES = 1_048_576


def definitions_parse(raw: bytes | str) -> list:
    """Read a JSON or YAML file of one definition or a list of them."""
    import yaml

    if isinstance(raw, bytes):
        if len(raw) > MAX_DEFINITIONS_BYTES:
            raise DefinitionsFileError(
                f"the file is larger than {MAX_DEFINITIONS_BYTES} bytes"
            )
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DefinitionsFileError("the file is not UTF-8 text") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise DefinitionsFileError(f"not valid JSON or YAML: {exc}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise DefinitionsFileError(
            "expected a definition (an object) or a non-empty list of definitions"
        )
    return data


def definitions_import(definitions: list, *, actor=None, dry_run: bool = False):
    """Import definitions all or nothing: returns [(index, ImportResult | error)].

    Any error rolls every definition back. With `dry_run`, the import is done and
    rolled back, so the results preview what a real import would do.
    """
    from .definitions import DefinitionError, automation_import

    class _Rollback(Exception):
        pass

    outcomes = []
    try:
        with transaction.atomic():
            for index, definition in enumerate(definitions):
                try:
                    with transaction.atomic():
                        outcomes.append((index, automation_import(definition, actor=actor)))
                except DefinitionError as exc:
                    outcomes.append((index, str(exc)))
            if dry_run or any(isinstance(o, str) for _, o in outcomes):
                raise _Rollback
    except _Rollback:
        pass
    return outcomes
