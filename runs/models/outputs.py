"""A run's outputs: what its last step's actions returned, kept (Kognitos: "once a
run completes successfully, its output becomes available").

Written by the batch commit in the transaction that counts them, so the run's
`output_items` is always the number of its outputs.
"""

from django.db import models
from django.utils import timezone

from .items import WorkItem
from .runs import Run


class RunOutput(models.Model):
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="outputs", db_index=False
    )
    # the last step's work item whose action returned it
    work_item = models.ForeignKey(
        WorkItem,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="run_outputs",
        db_index=False,
        db_constraint=False,
    )
    subject = models.CharField(max_length=254, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run_id", "id"]
        indexes = [
            # /outputs/ and the run page: a run's outputs in order (keyset pages)
            models.Index(fields=["run", "id"], name="run_output_run_order"),
        ]

    def __str__(self):
        return f"Output {self.pk} of run {self.run_id}"
