"""django-q2 task entry points (referenced by dotted path; keep the names stable)."""

import logging

from croniter import croniter
from django.db import IntegrityError
from django.utils import timezone

from .engine import housekeeping as _housekeeping
from .engine import step_run_execute as _step_run_execute

log = logging.getLogger("runs.engine")


def step_run_execute(step_run_id: int) -> str:
    return _step_run_execute(step_run_id)


def housekeeping() -> dict:
    """Everything periodic, in one django-q2 schedule (see housekeeping_schedule_sync):
    the engine's pass, schedule sync, mail schedules, webhook retries and expired
    idempotency keys."""
    from automations.services import schedules_sync

    from .api.housekeeping import api_housekeeping
    from .engine.housekeeping import housekeeping_part, housekeeping_schedule_sync
    from .mail.tasks import mail_schedules_sync
    from .retention import retention_apply

    # each part isolated: one that fails is logged and named in report["errors"]
    report = _housekeeping()
    housekeeping_part(report, "api", lambda: report.update(api_housekeeping()))
    report.pop("api", None)
    housekeeping_part(report, "schedules", schedules_sync)
    housekeeping_part(report, "mail_schedules", mail_schedules_sync)
    housekeeping_part(report, "retention", lambda: retention_apply().as_dict())
    housekeeping_part(report, "housekeeping_schedule", housekeeping_schedule_sync)
    report.pop("housekeeping_schedule", None)
    return report


def schedule_fire(trigger_id: int) -> str:
    """Start the run of a schedule trigger for its latest fire time, once.

    Whatever fires it (several clusters, a late scheduler), the unique
    (trigger, fired_at) lets one run per fire time through. After downtime only the
    latest missed fire time runs: catch-up never bursts.
    """
    from automations.models import AutomationStatus, Trigger, TriggerKind

    from .services import RunsError, run_start

    trigger = Trigger.objects.select_related("automation").filter(pk=trigger_id).first()
    if trigger is None or not trigger.enabled or trigger.kind != TriggerKind.SCHEDULE:
        return f"trigger {trigger_id} is gone or disabled"
    if trigger.automation.status != AutomationStatus.PUBLISHED:
        return f"{trigger.automation.slug} is not published"
    now = timezone.localtime()
    fired_at = croniter(trigger.cron, now).get_prev(type(now))
    try:
        run = run_start(
            automation=trigger.automation,
            trigger_kind=TriggerKind.SCHEDULE,
            trigger=trigger,
            fired_at=fired_at,
            actor_label=f"schedule {trigger.cron}",
        )
    except IntegrityError:
        return f"{trigger} already fired for {fired_at.isoformat()}"
    except RunsError as exc:
        log.warning("schedule %s did not start a run: %s", trigger, exc)
        return str(exc)
    Trigger.objects.filter(pk=trigger.pk).update(last_fired_at=fired_at)
    return f"run {run.number} for {fired_at.isoformat()}"
