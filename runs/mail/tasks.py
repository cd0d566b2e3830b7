"""django-q2 entry points for e-mail (dotted paths in schedules: keep the names)."""

from django.db import transaction

from ..conf import runs_settings

FETCH_MAIL_SCHEDULE = "runs:fetch_mail"
NOTIFICATIONS_SCHEDULE = "runs:notifications"


def fetch_mail() -> str:
    from .imap import MailboxNotConfigured, mailbox_fetch

    try:
        return mailbox_fetch().summary()
    except MailboxNotConfigured as exc:
        return str(exc)


def notifications_send_due() -> dict:
    from .notifications import notifications_send_due as send

    return send()


def mail_schedules_sync() -> dict:
    """Keep the e-mail schedules in django-q2: the IMAP poll every
    RUNS_IMAP_POLL_MINUTES while RUNS_IMAP_HOST is set (removed otherwise), and
    the notification pass (retries, digests) every minute. Idempotent."""
    from django_q.models import Schedule

    report = {}
    with transaction.atomic():
        if runs_settings.IMAP_HOST:
            Schedule.objects.update_or_create(
                name=FETCH_MAIL_SCHEDULE,
                defaults={
                    "func": "runs.mail.tasks.fetch_mail",
                    "schedule_type": Schedule.MINUTES,
                    "minutes": max(1, int(runs_settings.IMAP_POLL_MINUTES)),
                    "repeats": -1,
                },
            )
            report["fetch_mail"] = "scheduled"
        else:
            Schedule.objects.filter(name=FETCH_MAIL_SCHEDULE).delete()
            report["fetch_mail"] = "off"
        Schedule.objects.update_or_create(
            name=NOTIFICATIONS_SCHEDULE,
            defaults={
                "func": "runs.mail.tasks.notifications_send_due",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
            },
        )
        report["notifications"] = "scheduled"
    return report
