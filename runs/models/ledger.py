"""The append-only ledger: run items, audit events, their chain heads and counters.

Written only by `runs.ledger`. Each index names the query it serves.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..states import FailureType, RunItemOutcome
from .conditions import one_of
from .items import WorkItem
from .runs import Run, StepRun


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


# An idempotency key is "<run id>:<work item id>:<action key>": a UUID (36), a
# bigint id (up to 20 digits), two colons and an action key of up to Step.action's
# 200 characters. PostgreSQL enforces the length (SQLite does not).
IDEMPOTENCY_KEY_MAX_LENGTH = 36 + 1 + 20 + 1 + 200


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
    # no index of its own, as WorkItem.step: only a step's delete would use it
    # (/metrics' failures per step read run_item_failed_step)
    step = models.ForeignKey(
        "automations.Step",
        on_delete=models.PROTECT,
        related_name="run_items",
        db_index=False,
    )
    # like WorkItem.lease_owner: a record of which step run wrote it; the step run
    # is only deleted with the run and its run items
    step_run = models.ForeignKey(
        StepRun,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    action = models.CharField(max_length=200)
    subject = models.CharField(max_length=254, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    attempt = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
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
        # no index on idempotency_key nor subject: the admin's search by key
        # reads the run items of the work item the key names, by subject those
        # of the work items of that subject (a run item's subject is its work
        # item's: RunItemAdmin); replays look results up in ActionResult
        indexes = [
            # /metrics: failed attempts per step. Partial: failures are few, so
            # the engine's bulk inserts of succeeded items never touch it
            models.Index(
                fields=["step"],
                condition=Q(outcome=RunItemOutcome.FAILED),
                name="run_item_failed_step",
            ),
        ]

    def __str__(self):
        return f"Run item {self.pk} ({self.outcome})"

    @property
    def result_link(self) -> str:
        """The deep link of `result_ref` by its step's `result_url` ('' if none)."""
        return self.step.result_url_for(self.result_ref)

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
        Run,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="audit_events",
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
            models.UniqueConstraint(
                fields=["chain", "seq"], name="audit_chain_seq_unique"
            ),
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

    idempotency_key = models.CharField(
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH, primary_key=True
    )
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    result_ref = models.CharField(max_length=254, blank=True)
    outputs = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.idempotency_key
