"""Telling approvers: when work items begin to wait for a decision, each person
who may decide gets an e-mail and the automation's webhooks a
`work_item.awaiting_input` event, both with links to the approval pages. Written in
the transaction that parked the items (`runs.outbox.work_items_awaiting_outbox`),
sent after it commits."""

from django.contrib.auth import get_user_model
from django.db.models import Q

from automations.workspaces import ROLE_GROUPS, may

from .mail.models import Notification, NotificationMode
from .mail.notifications import AWAITING_NOTICE, approval_url
from .models import Run, WorkItem
from .selectors import DECIDE_PERMISSION, WORKSPACE_APPROVER_ROLES
from .webhooks.models import AWAITING_INPUT_EVENT
from .webhooks.services import deliveries_create

WEBHOOK_ITEMS_MAX = 100


def approver_users(run: Run, approvers: list[str]) -> list:
    """The people who may decide on an item with `approvers` (usernames,
    group:NAME and workspace:ROLE, as `runs.selectors.ApproverMatch` reads them;
    none named: the automation's owners), with an e-mail address, the decide
    permission in the run's workspace, and not the person who started the run
    (four eyes)."""
    User = get_user_model()
    workspace_id = run.automation.workspace_id
    if approvers:
        names, groups, roles = [], [], []
        for name in approvers:
            if name.startswith("group:"):
                groups.append(name[len("group:") :])
            elif name.startswith("workspace:"):
                role = name[len("workspace:") :]
                if role in WORKSPACE_APPROVER_ROLES:
                    roles.append(role)
            else:
                names.append(name)
        # a role is held as a member of the run's workspace or through the
        # tenant-wide group of that role (automations.workspaces.holds_role)
        groups += [ROLE_GROUPS[role] for role in roles]
        users = User.objects.filter(
            Q(**{f"{User.USERNAME_FIELD}__in": names})
            | Q(groups__name__in=groups)
            | Q(
                workspace_memberships__workspace_id=workspace_id,
                workspace_memberships__role__in=roles,
            )
        )
    else:
        users = run.automation.owners.all()
    users = users.filter(is_active=True).exclude(email="").distinct()
    if run.run_by_id:
        users = users.exclude(pk=run.run_by_id)
    return [u for u in users.order_by("pk") if may(u, DECIDE_PERMISSION, workspace_id)]


def awaiting_notices_record(run: Run, item_ids: list[int]) -> list:
    """In the transaction that parked `item_ids` awaiting input: one notification
    per approver (none while an earlier one to them about this run is unsent) and a
    `work_item.awaiting_input` webhook delivery with links. Returns the
    notifications, to send after commit."""
    items = list(
        WorkItem.objects.filter(pk__in=item_ids)
        .select_related("step")
        .order_by("id")
        .only("pk", "step__name", "subject", "approvers", "approval_deadline")
    )
    users = {}
    for approvers in {tuple(item.approvers) for item in items}:
        for user in approver_users(run, list(approvers)):
            users[user.pk] = user
    waiting = set(
        Notification.objects.filter(
            run=run, state=AWAITING_NOTICE, sent_at__isnull=True, user__in=users
        ).values_list("user_id", flat=True)
    )
    notices = Notification.objects.bulk_create(
        Notification(
            run=run,
            user=user,
            email=user.email,
            state=AWAITING_NOTICE,
            mode=NotificationMode.IMMEDIATE,
        )
        for pk, user in users.items()
        if pk not in waiting
    )
    deliveries_create(
        run_id=run.pk,
        before=run.state,
        after=run.state,
        event=AWAITING_INPUT_EVENT,
        # built only when a webhook wants the event
        extra=lambda: {
            "work_items": [
                {
                    "id": item.pk,
                    "step": item.step.name,
                    "subject": item.subject,
                    "approvers": item.approvers,
                    "approval_deadline": item.approval_deadline,
                    "url": approval_url(run, item.pk),
                }
                for item in items[:WEBHOOK_ITEMS_MAX]
            ],
            "work_items_awaiting": len(items),
        },
    )
    return notices
