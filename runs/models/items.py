"""Work items and their files.

`state` is written only by `runs.machines`. Each index names the query it serves.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..files import work_item_file_token
from ..states import FailureType, WorkItemState
from .conditions import one_of
from .runs import Run, StepRun


class WorkItem(models.Model):
    # On PostgreSQL, `run` and `step` are not foreign keys in the database but
    # triggers that check each statement's rows at once, with the same rules
    # (migration 0026; tests/runs/test_work_item_keys.py). An AlterField of
    # either would bring its per-row key back: test_schema pins the triggers.
    # indexed as the first column of work_item_claim
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="work_items", db_index=False
    )
    # no index of its own: it would serve only the delete of a step (with its
    # version or automation, which runs PROTECT anyway), and every write of an
    # item, its insert and each state change (never a HOT update: `state` is
    # indexed), paid an entry for it. Such a delete scans the table instead
    step = models.ForeignKey(
        "automations.Step",
        on_delete=models.PROTECT,
        related_name="work_items",
        db_index=False,
    )
    # indexed by work_item_parent, items with a parent only
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="outputs",
        db_index=False,
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
        StepRun,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
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
        # "run_id", not "run": "run" follows Run's ordering (-number), which joined
        # the runs table and sorted a run's items by its number on every page
        ordering = ["run_id", "id"]
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
            # the work-item explorer of one run, in order: the admin list
            # `?run__id__exact=N` (WHERE run_id = N ORDER BY id, LIMIT 51) and the
            # run page's keyset pages (AND id > last); read off the index, no sort.
            # Unique with the step (id alone is): on PostgreSQL run items have
            # one foreign key, (run, work item, step) to it, instead of three
            # (migration 0025_engine_run_item_key)
            models.UniqueConstraint(
                fields=["run", "id", "step"], name="work_item_run_order"
            ),
        ]
        indexes = [
            # the engine's claim: pending items of one step of one run in id order
            # (and, by its first column, every lookup of a run's items). The id
            # is SQLite's implicit last column; PostgreSQL, without it, sorted
            # every pending item of the step at each claim of a batch
            models.Index(fields=["run", "step", "state", "id"], name="work_item_claim"),
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
            # what awaits whose decision (the dashboard, `awaiting=me`): the few
            # items waiting, in run order, without walking every item of every run
            models.Index(
                fields=["run", "id"],
                condition=Q(state=WorkItemState.AWAITING_INPUT),
                name="work_item_awaiting",
            ),
            # a parent's outputs (a held output dropped, SET_NULL on a delete,
            # the foreign key's own check). Partial: a run's inputs, written by
            # `run_start`, have no parent, and the lookups are all `parent = x`
            models.Index(
                fields=["parent"],
                condition=Q(parent__isnull=False),
                name="work_item_parent",
            ),
            # admin: runs search by the exact subject of a work item
            models.Index(fields=["subject"], name="work_item_subject"),
        ]

    def __str__(self):
        return f"Work item {self.pk}"


def work_item_file_path(instance, filename):
    if instance.work_item_id is None:  # a robot's artifact: its step run's
        step_run = instance.step_run
        return f"step-runs/{step_run.run_id}/{step_run.pk}/{filename}"
    return f"work-items/{instance.work_item.run_id}/{instance.work_item_id}/{filename}"


class WorkItemFile(models.Model):
    """A file of a work item (an e-mail attachment, a robot's upload) or of a step
    run alone (a robot's `output/` artifacts, no work item). Served only through
    permission-checked views and signed URLs, never from MEDIA_URL."""

    work_item = models.ForeignKey(
        WorkItem,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="files",
    )
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
    # the robot's step run that uploaded or left it (none for e-mail
    # attachments); step runs go only with their run, and its files with them
    step_run = models.ForeignKey(
        "StepRun",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="files",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["work_item", "name"], name="work_item_file_name_unique"
            ),
            # a step run's own artifacts: one per name (a path under output/)
            models.UniqueConstraint(
                fields=["step_run", "name"],
                condition=Q(work_item__isnull=True),
                name="step_run_file_name_unique",
            ),
            # every file belongs to a work item, a step run, or both
            models.CheckConstraint(
                condition=Q(work_item__isnull=False) | Q(step_run__isnull=False),
                name="work_item_file_has_owner",
            ),
        ]

    def __str__(self):
        return self.name
