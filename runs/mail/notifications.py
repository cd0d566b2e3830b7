"""Notifications: tell owners and subscribers when a run needs them.

When a run becomes unresolved, failed or timed out, every owner of its automation
and every subscriber is recorded in the Notification outbox with their mode, in the
transaction of the move itself (`runs.outbox`):
- `immediate`: one e-mail per run, sent right away (after the move commits);
- `digest`: collected, and sent as one e-mail per period
  (RUNS_NOTIFY_DIGEST_MINUTES) by `notifications_send_due`;
- `off`: nothing.
Owners without a subscription row get RUNS_NOTIFY_DEFAULT_MODE. A send that fails
(SMTP down) stays in the outbox with its error and is retried by
`notifications_send_due`, up to RUNS_NOTIFY_MAX_ATTEMPTS. Everything goes through
Django's e-mail backends (EMAIL_BACKEND).
"""

import logging
from collections import defaultdict

from django.core.mail import EmailMessage, get_connection
from django.db.models import Max, Q
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from automations.workspaces import VIEW_RUNS, may

from ..conf import runs_settings
from ..models import Run
from ..states import RunState, WorkItemState
from .models import AutomationSubscription, Notification, NotificationMode

log = logging.getLogger("runs.mail")

NOTIFY_STATES = frozenset({RunState.UNRESOLVED, RunState.FAILED, RunState.TIMED_OUT})


def waiting_for_someone() -> Q:
    """Runs that wait for a person (the dashboard's list, notifications): the
    NOTIFY_STATES, and a cancelled run that left failed items (a stop failed them:
    someone retries or resolves them)."""
    return Q(state__in=NOTIFY_STATES) | Q(state=RunState.CANCELLED, failed_items__gt=0)


def notify_state(run: Run, state: str) -> bool:
    """Whether `run` entering `state` is notified (inside the move's transaction,
    after the move's own writes)."""
    if state in NOTIFY_STATES:
        return True
    return (
        state == RunState.CANCELLED
        and Run.objects.filter(pk=run.pk, failed_items__gt=0).exists()
    )


# Not a state: a run past its SLA (runs.ops.sla) is notified under this name.
SLA_BREACHED = "sla_breached"
# Not a run state either: items of the run wait for the notified approver.
AWAITING_NOTICE = "awaiting_input"
NOTICE_LABELS = {SLA_BREACHED: "overdue", AWAITING_NOTICE: "awaiting a decision"}
AWAITING_LISTED_MAX = 20
# A claim older than this belongs to a sender that died: the row is free again.
CLAIM_STALE = timezone.timedelta(minutes=10)


def run_admin_url(run: Run) -> str:
    try:
        path = run.admin_path()
    except NoReverseMatch:
        return ""
    return runs_settings.ADMIN_BASE_URL.rstrip("/") + path


def approval_url(run: Run, item_id: int) -> str:
    """The absolute link of an item's approval page (e-mails, webhooks)."""
    try:
        path = reverse("admin:runs_run_decide", args=[run.pk, item_id])
    except NoReverseMatch:  # a host project without the runs admin
        return ""
    return runs_settings.ADMIN_BASE_URL.rstrip("/") + path


def awaiting_items(run: Run) -> list[dict]:
    """The first items of `run` awaiting input, with their approval page links."""
    items = (
        run.work_items.filter(state=WorkItemState.AWAITING_INPUT)
        .select_related("step")
        .order_by("id")[:AWAITING_LISTED_MAX]
    )
    return [
        {"item": item, "url": approval_url(run, item.pk), "step": item.step.name}
        for item in items
    ]


def notification_recipients(automation) -> list[tuple]:
    """(user, mode) of everyone to tell about a run of `automation`: owners in
    their chosen mode (default RUNS_NOTIFY_DEFAULT_MODE) and subscribers, who may
    view runs in its workspace (an e-mail is a door too: someone who lost their
    role there hears nothing more of it)."""
    default = runs_settings.NOTIFY_DEFAULT_MODE
    modes = {
        s.user_id: (s.user, s.mode)
        for s in AutomationSubscription.objects.filter(
            automation=automation
        ).select_related("user")
    }
    for owner in automation.owners.all():
        modes.setdefault(owner.pk, (owner, default))
    return [
        (user, mode)
        for user, mode in modes.values()
        if mode != NotificationMode.OFF
        and user.is_active
        and user.email
        and may(user, VIEW_RUNS, automation.workspace_id)
    ]


def notifications_record(*, run: Run, state: str) -> list[Notification]:
    """Write the outbox rows telling everyone concerned that `run` became
    `state` (or `SLA_BREACHED`); sending is the caller's, after commit."""
    return Notification.objects.bulk_create(
        Notification(run=run, user=user, email=user.email, state=state, mode=mode)
        for user, mode in notification_recipients(run.automation)
    )


def _claim(queryset, now) -> list[int]:
    """Take unsent rows for this sender (compare-and-set on claimed_at)."""
    ids = list(queryset.values_list("pk", flat=True))
    if not ids:
        return []
    free = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_STALE)
    Notification.objects.filter(Q(pk__in=ids, sent_at__isnull=True) & free).update(
        claimed_at=now
    )
    return list(
        Notification.objects.filter(
            pk__in=ids, claimed_at=now, sent_at__isnull=True
        ).values_list("pk", flat=True)
    )


def _context(notification: Notification) -> dict:
    run = notification.run
    return {
        "run": run,
        "automation": run.automation,
        "state": notification.state,
        "state_label": NOTICE_LABELS.get(notification.state)
        or RunState(notification.state).label,
        "url": run_admin_url(run),
        "notification": notification,
    }


def _deliver(messages: list[tuple[list[int], EmailMessage]]) -> int:
    """Send each message; mark its rows sent, or record the error on them."""
    sent = 0
    connection = get_connection()
    for ids, message in messages:
        message.connection = connection
        now = timezone.now()
        try:
            message.send(fail_silently=False)
        except Exception as exc:  # noqa: BLE001 - kept in the outbox, retried
            log.warning("notification to %s not sent: %s", message.to, exc)
            for row in Notification.objects.filter(pk__in=ids):
                Notification.objects.filter(pk=row.pk).update(
                    claimed_at=None,
                    attempts=row.attempts + 1,
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                )
            continue
        Notification.objects.filter(pk__in=ids).update(sent_at=now, error="")
        sent += 1
    return sent


def notifications_send(*, ids=None) -> int:
    """Send unsent immediate notifications (those in `ids`, or all that are due),
    one e-mail per run and person. Returns how many e-mails went out."""
    now = timezone.now()
    unsent = Notification.objects.filter(
        mode=NotificationMode.IMMEDIATE,
        sent_at__isnull=True,
        attempts__lt=runs_settings.NOTIFY_MAX_ATTEMPTS,
    )
    if ids is not None:
        unsent = unsent.filter(pk__in=ids)
    claimed = _claim(unsent, now)
    messages = []
    for row in Notification.objects.filter(pk__in=claimed).select_related(
        "run__automation", "run__version"
    ):
        context = _context(row)
        # a notice to approvers (runs.engine.approvals) or a run's state
        name = "awaiting_input" if row.state == AWAITING_NOTICE else "run_notification"
        if name == "awaiting_input":
            context["awaiting"] = awaiting_items(row.run)
        subject = render_to_string(f"runs/mail/{name}_subject.txt", context)
        body = render_to_string(f"runs/mail/{name}.txt", context)
        messages.append(
            ([row.pk], EmailMessage(" ".join(subject.split()), body, to=[row.email]))
        )
    return _deliver(messages)


def notification_digests_send(*, now=None) -> int:
    """Send each person with unsent digest notifications one e-mail listing them,
    unless they were sent a digest less than a period ago. Returns e-mails sent."""
    now = now or timezone.now()
    period = timezone.timedelta(minutes=runs_settings.NOTIFY_DIGEST_MINUTES)
    unsent = Notification.objects.filter(
        mode=NotificationMode.DIGEST,
        sent_at__isnull=True,
        attempts__lt=runs_settings.NOTIFY_MAX_ATTEMPTS,
    )
    emails = set(unsent.values_list("email", flat=True))
    if not emails:
        return 0
    last_sent = dict(
        Notification.objects.filter(
            mode=NotificationMode.DIGEST, email__in=emails, sent_at__isnull=False
        )
        .values_list("email")
        .annotate(last=Max("sent_at"))
    )
    due = [e for e in emails if e not in last_sent or last_sent[e] <= now - period]
    claimed = _claim(unsent.filter(email__in=due), now)
    by_email = defaultdict(list)
    for row in (
        Notification.objects.filter(pk__in=claimed)
        .select_related("run__automation", "run__version")
        .order_by("created_at", "id")
    ):
        by_email[row.email].append(row)
    messages = []
    for email, rows in sorted(by_email.items()):
        context = {
            "items": [_context(row) for row in rows],
            "count": len(rows),
            "period_minutes": runs_settings.NOTIFY_DIGEST_MINUTES,
        }
        subject = render_to_string("runs/mail/digest_subject.txt", context)
        body = render_to_string("runs/mail/digest.txt", context)
        messages.append(
            (
                [row.pk for row in rows],
                EmailMessage(" ".join(subject.split()), body, to=[email]),
            )
        )
    return _deliver(messages)


def notifications_send_due() -> dict:
    """The periodic pass: retry immediate notifications, send due digests."""
    return {
        "immediate": notifications_send(),
        "digests": notification_digests_send(),
    }
