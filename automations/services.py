"""Writes on automation definitions: publish, retire, and schedule sync."""

import logging

from django.db import transaction
from django.utils import timezone

from .actions.registry import UnknownAction, get_action
from .models import (  # VersionFrozen: raised by Step, importable from here too
    Automation,
    AutomationStatus,
    AutomationVersion,
    Membership,
    Trigger,
    TriggerKind,
    VersionFrozen,
    Workspace,
    WorkspaceRole,
)

__all__ = [
    "AutomationStateError",
    "VersionFrozen",
    "automation_retire",
    "schedules_sync",
    "version_publish",
]

log = logging.getLogger("runs.engine")


class AutomationStateError(Exception):
    pass


def record_event(verb, obj, actor, **kwargs):
    """Append an audit event about a definition to the global ledger chain."""
    # not at module level: automations never imports runs at load (runs imports
    # automations' models; the apps load in that order)
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


def _is_robot(action_key: str) -> bool:
    try:
        return get_action(action_key).robot
    except UnknownAction:
        return False


def publish_refusal(version: AutomationVersion, actor) -> str:
    """Why `actor` may not publish `version` under four eyes ('' : they may).

    An automation with `publish_needs_second_person` is published by someone other
    than whoever made the version; nobody (the system, a command without a user)
    is no second person. A version whose maker is not known (made before the
    column) may be published by any named person."""
    automation = version.automation
    if not automation.publish_needs_second_person:
        return ""
    if actor is None or not getattr(actor, "pk", None):
        return (
            f"{automation.slug} needs a second person to publish a version: "
            "a named person, not the system"
        )
    if version.created_by_id is not None and version.created_by_id == actor.pk:
        return (
            f"{automation.slug} needs a second person to publish a version: "
            f"{actor.get_username()} made {version} and may not publish it"
        )
    return ""


def version_publish(version: AutomationVersion, *, actor=None) -> AutomationVersion:
    """Freeze `version` and make it the one schedule, e-mail and API triggers use.

    Under four eyes (`publish_needs_second_person`) the version's maker is refused
    (`publish_refusal`); the published event names the maker and the rule."""
    from runs.evidence.config import current_actor
    from runs.secrets.references import parameters_problem

    if actor is None:  # e.g. an import: whoever runs it (request, command)
        actor = current_actor()[0]
    refusal = publish_refusal(version, actor)
    if refusal:
        raise AutomationStateError(refusal)

    for step in version.steps.all():
        problem = parameters_problem(
            step.parameters,
            workspace=version.automation.workspace_id,
            robot=_is_robot(step.action),
        )
        if problem:
            raise AutomationStateError(f"step {step.name}: {problem}")
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
        record_event(
            "version.published",
            version,
            actor,
            before={"automation_status": before},
            after={
                "number": version.number,
                "automation_status": "published",
                "made_by": version.created_by.get_username()
                if version.created_by_id
                else "",
                "second_person": automation.publish_needs_second_person,
            },
        )
        transaction.on_commit(schedules_sync)
    return version


def automation_retire(automation: Automation, *, actor=None, reason: str = "") -> None:
    """Retire an automation: no trigger starts it any more; its runs stay."""
    with transaction.atomic():
        changed = (
            Automation.objects.filter(pk=automation.pk)
            .exclude(status=AutomationStatus.RETIRED)
            .update(status=AutomationStatus.RETIRED, updated_at=timezone.now())
        )
        if not changed:
            raise AutomationStateError(f"{automation.slug} is already retired")
        record_event(
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
                    trigger.pk,
                    trigger.automation.slug,
                    trigger.cron,
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


# -- workspaces -----------------------------------------------------------------
# Workspace and Membership changes are audit events in the global chain through
# runs.evidence.config's receivers, whichever door made them (these, admin).


def workspace_add(*, slug: str, name: str = "", actor=None):
    """Create the workspace `slug` (or rename it); returns (workspace, created)."""
    with transaction.atomic():
        workspace, created = Workspace.objects.get_or_create(
            slug=slug, defaults={"name": name or slug}
        )
        if not created and name and workspace.name != name:
            workspace.name = name
            workspace.save(update_fields=["name"])
    return workspace, created


def workspace_grant(*, user, workspace, role: str, revoke: bool = False):
    """Give `user` the role `role` in `workspace` (or take it back). A person
    with a workspace role signs in to admin, so granting one marks them staff.
    Returns True when something changed."""
    if role not in WorkspaceRole.values:
        raise ValueError(
            f"role must be one of {', '.join(WorkspaceRole.values)}, got {role!r}"
        )
    with transaction.atomic():
        if revoke:
            found = Membership.objects.filter(
                user=user, workspace=workspace, role=role
            ).first()
            if found is None:
                return False
            found.delete()
            return True
        _, created = Membership.objects.get_or_create(
            user=user, workspace=workspace, role=role
        )
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
    return created
