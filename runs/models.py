"""Executions: runs, step runs, work items, and the append-only ledger.

`state` columns are written only by `runs.machines`; the ledger tables (AuditEvent,
RunItem) only by `runs.ledger`. Each index names the query it serves.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from automations.models import TriggerKind

from .files import work_item_file_token
from .states import (
    FailureType,
    RunItemOutcome,
    RunState,
    StepRunState,
    WorkItemState,
)


def one_of(field: str, values) -> Q:
    """`field` is one of `values`, as `field = a OR field = b …` rather than
    `field IN (a, b …)`. For the rows the engine writes by the thousand: SQLite
    evaluates an IN list by building a temporary b-tree once per statement
    execution, which an `executemany` insert pays again for every row."""
    condition = Q()
    for value in values:
        condition |= Q(**{field: value})
    return condition


class Sequence(models.Model):
    """Named counters (run numbers), advanced with a locked UPDATE."""

    name = models.CharField(max_length=50, primary_key=True)
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"{self.name}={self.value}"


class LedgerHead(models.Model):
    """Head of a ledger chain that does not belong to a run (e.g. "global")."""

    key = models.CharField(max_length=50, primary_key=True)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="")

    def __str__(self):
        return f"{self.key}@{self.seq}"


class RunQuerySet(models.QuerySet):
    def visible(self):
        return self.filter(archived=False)

    def active(self):
        from .states import RUN_ACTIVE

        return self.filter(state__in=RUN_ACTIVE)


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.PositiveBigIntegerField(unique=True, editable=False)
    automation = models.ForeignKey(
        "automations.Automation", on_delete=models.PROTECT, related_name="runs"
    )
    version = models.ForeignKey(
        "automations.AutomationVersion", on_delete=models.PROTECT, related_name="runs"
    )
    trigger_kind = models.CharField(max_length=20, choices=TriggerKind.choices)
    trigger = models.ForeignKey(
        "automations.Trigger",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    # Schedule fire time: unique per trigger, so a fire time starts one run however
    # many clusters see it.
    fired_at = models.DateTimeField(null=True, blank=True)
    run_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    run_by_label = models.CharField(max_length=254, blank=True)
    inputs = models.JSONField(default=list, blank=True)
    state = models.CharField(
        max_length=30, choices=RunState.choices, default=RunState.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    total_items = models.PositiveIntegerField(default=0)
    output_items = models.PositiveIntegerField(default=0)
    failed_items = models.PositiveIntegerField(default=0)
    subjects_matched = models.PositiveIntegerField(default=0)
    actions_invoked = models.PositiveIntegerField(default=0)
    current_step = models.CharField(max_length=100, blank=True)
    archived = models.BooleanField(default=False)
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    stop_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    stop_options = models.JSONField(default=dict, blank=True)
    is_test_case = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    # Head of this run's ledger chain (audit events and run items share it).
    ledger_seq = models.PositiveBigIntegerField(default=0, editable=False)
    ledger_hash = models.CharField(max_length=64, default="", editable=False)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        permissions = [
            ("stop_run", "Can stop runs"),
            ("retry_run", "Can retry failed items"),
            ("resolve_run", "Can resolve failed items"),
            ("archive_run", "Can archive and unarchive runs"),
            ("rerun_run", "Can re-run runs"),
            ("approve_run", "Can approve or reject awaiting items"),
            ("trigger_run", "Can start runs"),
            ("export_run", "Can export runs"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=RunState.values), name="run_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(trigger_kind__in=TriggerKind.values),
                name="run_trigger_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(completed_at__isnull=True)
                | Q(completed_at__gte=models.F("created_at")),
                name="run_completed_after_created",
            ),
            models.UniqueConstraint(
                fields=["trigger", "fired_at"],
                condition=Q(fired_at__isnull=False),
                name="run_one_per_fire_time",
            ),
        ]
        indexes = [
            # changelist / API: default listing and the state, automation,
            # trigger and archived filters, newest first
            models.Index(fields=["archived", "-number"], name="run_archived_number"),
            models.Index(fields=["state", "-number"], name="run_state_number"),
            models.Index(fields=["automation", "-number"], name="run_automation_number"),
            models.Index(fields=["trigger_kind", "-number"], name="run_trigger_number"),
            # date hierarchy and created_after / created_before
            models.Index(fields=["created_at"], name="run_created_at"),
            # run page: re-runs of a run. Partial: nearly every run has no
            # rerun_of, and a full index on a column of NULLs looks useless to
            # SQLite's planner after ANALYZE (it then scans the table)
            models.Index(
                fields=["rerun_of"],
                condition=Q(rerun_of__isnull=False),
                name="run_reruns",
            ),
        ]

    def __str__(self):
        return f"Run #{self.number}"

    def get_absolute_url(self):
        return reverse("admin:runs_run_change", args=[self.pk])

    @property
    def lead_time(self):
        if self.completed_at is None:
            return None
        return self.completed_at - self.created_at

    @property
    def lead_time_seconds(self):
        lead = self.lead_time
        return None if lead is None else round(lead.total_seconds(), 3)


class StepRun(models.Model):
    """One django-q2 task working through a step's pending items of one run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="step_runs")
    step = models.ForeignKey(
        "automations.Step", on_delete=models.PROTECT, related_name="step_runs"
    )
    state = models.CharField(
        max_length=20, choices=StepRunState.choices, default=StepRunState.QUEUED
    )
    # Fencing token: a new one each time the step run is (re)started; every write of
    # the step run carries it, so a stale worker's writes change nothing.
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    items_processed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # when its task was last sent: a step run still queued a lease later had its
    # task lost (Redis broker) and is sent again
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    log = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=StepRunState.values), name="step_run_state_valid"
            ),
        ]
        indexes = [
            # active step runs of a step (concurrency) and housekeeping's lease scan
            models.Index(fields=["run", "step", "state"], name="step_run_run_step_state"),
            models.Index(fields=["state", "lease_expires_at"], name="step_run_lease"),
        ]

    def __str__(self):
        return f"Step run {self.pk} of {self.step.name}"


class WorkItem(models.Model):
    # indexed as the first column of work_item_claim
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="work_items", db_index=False
    )
    step = models.ForeignKey(
        "automations.Step", on_delete=models.PROTECT, related_name="work_items"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="outputs"
    )
    state = models.CharField(
        max_length=20, choices=WorkItemState.choices, default=WorkItemState.PENDING
    )
    subject = models.CharField(max_length=254, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    available_at = models.DateTimeField(default=timezone.now)
    # the step run holding the lease, for the record: set and cleared with the lease,
    # never looked up by (no index), and its step run is only ever deleted with the
    # run and its items (no constraint to check on that delete)
    lease_owner = models.ForeignKey(
        StepRun, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
        db_index=False, db_constraint=False,
    )
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    failure_type = models.CharField(
        max_length=20, choices=FailureType.choices, blank=True
    )
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.TextField(blank=True)
    note = models.TextField(blank=True)
    approvers = models.JSONField(default=list, blank=True)
    approval_deadline = models.DateTimeField(null=True, blank=True)
    # the decision on an approval: {"decision", "by", "at", "data"}
    approval = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "id"]
        constraints = [
            models.CheckConstraint(
                condition=one_of("state", WorkItemState.values),
                name="work_item_state_valid",
            ),
            models.CheckConstraint(
                condition=one_of("failure_type", ["", *FailureType.values]),
                name="work_item_failure_type_valid",
            ),
            # a lease exists exactly while the item is in progress
            models.CheckConstraint(
                condition=Q(state=WorkItemState.IN_PROGRESS, lease_token__isnull=False)
                | (~Q(state=WorkItemState.IN_PROGRESS) & Q(lease_token__isnull=True)),
                name="work_item_lease_iff_in_progress",
            ),
        ]
        indexes = [
            # the engine's claim: pending items of one step of one run (and, by its
            # first column, every lookup of a run's items)
            models.Index(fields=["run", "step", "state"], name="work_item_claim"),
            # housekeeping's lease reaper and approval deadlines. Partial: the
            # engine moves every item in and out of progress, and an index entry
            # per item only while it is there is what that costs least
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(state=WorkItemState.IN_PROGRESS),
                name="work_item_lease",
            ),
            models.Index(
                fields=["approval_deadline"],
                condition=Q(state=WorkItemState.AWAITING_INPUT),
                name="work_item_approval_deadline",
            ),
            # admin: runs search by the exact subject of a work item
            models.Index(fields=["subject"], name="work_item_subject"),
        ]

    def __str__(self):
        return f"Work item {self.pk}"


def work_item_file_path(instance, filename):
    return f"work-items/{instance.work_item.run_id}/{instance.work_item_id}/{filename}"


class WorkItemFile(models.Model):
    """A file of a work item (an e-mail attachment, a robot's upload). Served only
    through permission-checked views and signed URLs, never from MEDIA_URL."""

    work_item = models.ForeignKey(WorkItem, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=255)
    file = models.FileField(upload_to=work_item_file_path, max_length=500)
    size = models.PositiveBigIntegerField(default=0)
    content_type = models.CharField(max_length=200, blank=True)
    # hex SHA-256 of the content, written with it (blank: a row older than it whose
    # file could not be read at migration)
    sha256 = models.CharField(max_length=64, blank=True)
    # random, per file: a signed download URL names it, so a URL made with the
    # signing key alone (or another file's URL) opens nothing
    token = models.CharField(
        max_length=64, default=work_item_file_token, editable=False
    )
    # the robot's step run that uploaded it (none for e-mail attachments)
    step_run = models.ForeignKey(
        "StepRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="files",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["work_item", "name"], name="work_item_file_name_unique"
            ),
        ]

    def __str__(self):
        return self.name


class LedgerRecord(models.Model):
    """Fields every ledger row carries: its place in a hash chain."""

    seq = models.PositiveBigIntegerField(editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    class Meta:
        abstract = True


class RunItem(LedgerRecord):
    """One action on one subject (append-only, part of the run's hash chain)."""

    # indexed as the first column of run_item_seq_unique
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="run_items", db_index=False
    )
    work_item = models.ForeignKey(
        WorkItem, on_delete=models.CASCADE, related_name="run_items"
    )
    step = models.ForeignKey(
        "automations.Step", on_delete=models.PROTECT, related_name="run_items"
    )
    # like WorkItem.lease_owner: a record of which step run wrote it; the step run
    # is only deleted with the run and its run items
    step_run = models.ForeignKey(
        StepRun, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
        db_index=False, db_constraint=False,
    )
    action = models.CharField(max_length=200)
    subject = models.CharField(max_length=254, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    attempt = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=200)
    outcome = models.CharField(max_length=30, choices=RunItemOutcome.choices)
    result_ref = models.CharField(max_length=254, blank=True)
    failure_type = models.CharField(
        max_length=20, choices=FailureType.choices, blank=True
    )
    failure_cause = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="run_item_seq_unique"),
            models.CheckConstraint(
                condition=one_of("outcome", RunItemOutcome.values),
                name="run_item_outcome_valid",
            ),
            models.CheckConstraint(
                condition=one_of("failure_type", ["", *FailureType.values]),
                name="run_item_failure_type_valid",
            ),
        ]
        indexes = [
            # idempotent replay looks results up by key
            models.Index(fields=["idempotency_key"], name="run_item_idempotency_key"),
            # admin: run items search by exact subject
            models.Index(fields=["subject"], name="run_item_subject"),
        ]

    def __str__(self):
        return f"Run item {self.pk} ({self.outcome})"

    def ledger_fields(self) -> dict:
        return run_item_ledger_fields(self.__dict__)


def run_item_ledger_fields(values: dict) -> dict:
    """What a run item's hash covers; `values` holds field attnames (a row dict or
    a RunItem's __dict__), so the engine can chain rows without model instances."""
    return {
        "kind": "run_item",
        "run": str(values["run_id"]),
        "work_item": values["work_item_id"],
        "step": values["step_id"],
        "action": values["action"],
        "subject": values["subject"],
        "parameters": values["parameters"],
        "attempt": values["attempt"],
        "idempotency_key": values["idempotency_key"],
        "outcome": values["outcome"],
        "result_ref": values["result_ref"],
        "failure_type": values["failure_type"],
        "failure_cause": values["failure_cause"],
        "started_at": values["started_at"],
        "finished_at": values["finished_at"],
    }


class AuditEvent(LedgerRecord):
    """A state change or an operator action (append-only, hash-chained).

    Events about a run chain on that run (with its run items); the others chain on
    the global head.
    """

    chain = models.CharField(max_length=50, editable=False)
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_label = models.CharField(max_length=254)
    verb = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["chain", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="audit_chain_seq_unique"),
        ]
        indexes = [
            # run detail audit trail and exports by period
            models.Index(fields=["run", "seq"], name="audit_run_seq"),
            models.Index(fields=["created_at"], name="audit_created_at"),
        ]

    def __str__(self):
        return f"{self.verb} {self.object_type} {self.object_id}"

    def ledger_fields(self) -> dict:
        return {
            "kind": "audit_event",
            "chain": self.chain,
            "run": str(self.run_id) if self.run_id else None,
            "actor_label": self.actor_label,
            "verb": self.verb,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "created_at": self.created_at,
        }


class ActionResult(models.Model):
    """Journal of side-effecting action results, written right after the call.

    A crash between the action and the step run's commit leaves this row behind, so
    the retried item replays it (`idempotent_replay`) instead of calling twice.
    """

    idempotency_key = models.CharField(max_length=200, primary_key=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    result_ref = models.CharField(max_length=254, blank=True)
    outputs = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.idempotency_key


# E-mail intake and notification models live with their code in runs.mail.
from .mail.models import (  # noqa: E402,F401
    AutomationSubscription,
    InboundMessage,
    Notification,
)
# Models of the API and webhooks live beside their code; imported here so Django
# registers them with the runs app.
from .api.models import ApiClient, IdempotencyKey  # noqa: E402, F401
from .webhooks.models import Webhook, WebhookAttempt, WebhookDelivery  # noqa: E402, F401
# Test cases from runs (issue 8) live with their services in runs.regression.
from .regression.models import TestCase, TestCaseRun  # noqa: E402, F401
