"""Runs and their step runs.

`state` columns are written only by `runs.machines`. Each index names the query it
serves.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from automations.models import TriggerKind

from ..states import RUN_PRIORITY_MAX, RUN_PRIORITY_MIN, RunState, StepRunState


class RunQuerySet(models.QuerySet):
    def visible(self):
        return self.filter(archived=False)

    def active(self):
        from ..states import RUN_ACTIVE

        return self.filter(state__in=RUN_ACTIVE)


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.PositiveBigIntegerField(unique=True, editable=False)
    # no index of its own: run_automation_number starts with it
    automation = models.ForeignKey(
        "automations.Automation",
        on_delete=models.PROTECT,
        related_name="runs",
        db_index=False,
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
    # waiting runs of an automation with max_concurrent_runs start higher first,
    # then oldest (runs.engine.admission)
    priority = models.SmallIntegerField(default=0)
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
    # rerun_of, parent, parent_item and stop_requested_by are NULL on nearly every
    # run: each has a partial index of the runs that have one (Meta.indexes), not
    # the full one Django makes for a foreign key, which every new run would enter
    rerun_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
        db_index=False,
    )
    # a job's child run (builtin.run_automation): the job run, and the job's work
    # item that waits for this run to settle and takes its outcome
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        db_index=False,
    )
    parent_item = models.ForeignKey(
        "runs.WorkItem",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="child_runs",
        db_index=False,
    )
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    stop_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
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
            models.CheckConstraint(
                condition=Q(priority__gte=RUN_PRIORITY_MIN)
                & Q(priority__lte=RUN_PRIORITY_MAX),
                name="run_priority_bounded",
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
            models.Index(
                fields=["automation", "-number"], name="run_automation_number"
            ),
            models.Index(fields=["trigger_kind", "-number"], name="run_trigger_number"),
            # date hierarchy and created_after / created_before
            models.Index(fields=["created_at"], name="run_created_at"),
            # run page: re-runs of a run. Partial: nearly every run has no
            # rerun_of, and a full index on a column of NULLs looks useless to
            # SQLite's planner after ANALYZE (it then scans the table)
            # admission: an automation's waiting runs in the order they start,
            # and a waiting run's position. Partial: only pending runs wait
            models.Index(
                fields=["automation", "-priority", "created_at", "number"],
                condition=Q(state=RunState.PENDING),
                name="run_waiting_queue",
            ),
            models.Index(
                fields=["rerun_of"],
                condition=Q(rerun_of__isnull=False),
                name="run_reruns",
            ),
            # run page and /children/: a job's child runs in order; partial for
            # the same reason as run_reruns (nearly every run has no parent)
            models.Index(
                fields=["parent", "number"],
                condition=Q(parent__isnull=False),
                name="run_children",
            ),
            # the child run a job's work item waits for (builtin.run_automation)
            models.Index(
                fields=["parent_item"],
                condition=Q(parent_item__isnull=False),
                name="run_parent_item",
            ),
            # a user's delete sets it to NULL
            models.Index(
                fields=["stop_requested_by"],
                condition=Q(stop_requested_by__isnull=False),
                name="run_stop_requested_by",
            ),
            # ?ordering=-completed_at
            models.Index(fields=["completed_at"], name="run_completed_at"),
        ]

    def __str__(self):
        return f"Run #{self.number}"

    def admin_path(self) -> str:
        """The run page's path. Not `get_absolute_url`: with it, Django admin's
        "view on site" redirect (`/admin/r/<type>/<id>/`, no permission check)
        would answer 302 for any existing run id and 404 otherwise, telling a
        person of another workspace which runs exist."""
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

    # no index of its own: step_run_run_step_state starts with it
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="step_runs", db_index=False
    )
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
            models.Index(
                fields=["run", "step", "state"], name="step_run_run_step_state"
            ),
            models.Index(fields=["state", "lease_expires_at"], name="step_run_lease"),
        ]

    def __str__(self):
        return f"Step run {self.pk} of {self.step.name}"
