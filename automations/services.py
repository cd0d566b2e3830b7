"""Writes on automation definitions: publish, retire, and schedule sync."""

import logging

from django.db import transaction
from django.utils import timezone

from runs.conf import runs_settings

from .models import Automation, AutomationStatus, AutomationVersion, Trigger, TriggerKind


log = logging.getLogger("runs.engine")


class VersionFrozen(Exception):
    """A published version's steps cannot change: make a new version instead."""


class AutomationStateError(Exception):
    pass


def _record(verb, obj, actor, **kwargs):
    from runs import ledger

    ledger.append(events=[ledger.audit_event(verb=verb, obj=obj, actor=actor, **kwargs)])


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
    Each trigger is synced on its own savepoint: one that fails (a cron stored
    before import refused it, `0 0 30 2 *`) is logged and counted as `failed`, and
    every other trigger is still synced.
    """
    from django_q.models import Schedule

    counts = {"created": 0, "updated": 0, "deleted": 0, "failed": 0}
    wanted = Trigger.objects.filter(
        kind=TriggerKind.SCHEDULE,
        enabled=True,
        automation__status=AutomationStatus.PUBLISHED,
    ).select_related("automation", "schedule")
    with transaction.atomic():
        keep = set()
        for trigger in wanted:
            try:
                with transaction.atomic():
                    keep.add(_schedule_sync(trigger, counts))
            except Exception:
                log.exception(
                    "schedule trigger %s (%s, cron %r) could not be synced",
                    trigger.pk, trigger.automation.slug, trigger.cron,
                )
                counts["failed"] += 1
                if trigger.schedule_id:
                    keep.add(trigger.schedule_id)  # leave it as it was
        stale = Schedule.objects.filter(func=SCHEDULE_TASK).exclude(pk__in=keep)
        counts["deleted"] = stale.count()
        stale.delete()
    return counts


def _schedule_sync(trigger: Trigger, counts: dict) -> int:
    """Create or update the schedule of one trigger; returns its pk."""
    from django_q.models import Schedule

    schedule = trigger.schedule
    if schedule is None:
        schedule = Schedule.objects.create(
            name=f"runs:trigger:{trigger.pk}",
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
    return schedule.pk


class DefinitionsFileError(ValueError):
    """A definitions file that cannot be read at all (not JSON/YAML, too big)."""


def definitions_size_check(size: int) -> None:
    """Refuse a definitions file over RUNS_MAX_DEFINITIONS_BYTES (before reading)."""
    limit = runs_settings.MAX_DEFINITIONS_BYTES
    if size > limit:
        raise DefinitionsFileError(
            f"the file is {size} bytes, larger than the limit of {limit} bytes "
            "(RUNS_MAX_DEFINITIONS_BYTES)"
        )


def _yaml_loader():
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """YAML without aliases: `*a` repeats a node without its bytes, so 517
        bytes of nested aliases expanded to 844 MB when the definition was hashed
        (security review, finding 6). Definitions never need them."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"YAML aliases (*{event.anchor}) are not allowed in definitions",
                    event.start_mark,
                )
            return super().compose_node(parent, index)

    return NoAliasLoader


def definitions_load(text: str, *, documents: bool = False):
    """Parse JSON or YAML text (JSON is YAML), refusing aliases; with `documents`,
    the list of its YAML documents. Raises DefinitionsFileError."""
    import yaml

    definitions_size_check(len(text.encode("utf-8", "surrogatepass")))
    try:
        if documents:
            return list(yaml.load_all(text, Loader=_yaml_loader()))
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise DefinitionsFileError(f"not valid JSON or YAML: {exc}") from None


def definitions_parse(raw: bytes | str) -> list:
    """Read a JSON or YAML file of one definition or a list of them."""
    if isinstance(raw, bytes):
        definitions_size_check(len(raw))
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DefinitionsFileError("the file is not UTF-8 text") from None
    data = definitions_load(raw)
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
