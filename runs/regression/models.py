"""Test cases (expected results taken from a run) and their executions."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class TestCase(models.Model):
    """A run kept as a regression check: its inputs, and the outcome each work
    item ended with, per step, keyed by (step name, subject, index among the
    items of that step with that subject)."""

    __test__ = False  # not a pytest class

    automation = models.ForeignKey(
        "automations.Automation", on_delete=models.CASCADE, related_name="test_cases"
    )
    # SET_NULL: retention may delete the source run; the case keeps what it needs
    source_run = models.ForeignKey(
        "runs.Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="test_cases",
    )
    source_run_number = models.PositiveBigIntegerField()
    name = models.CharField(max_length=200)
    inputs = models.JSONField(default=list, blank=True)
    expected_state = models.CharField(max_length=30)
    # [{"step": name, "subject": s, "index": n, "outcome": o, "failure_type": t}]
    expected = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by_label = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["automation", "id"]
        constraints = [
            # one test case per source run ("add as test case" twice is refused)
            models.UniqueConstraint(
                fields=["source_run"],
                condition=Q(source_run__isnull=False),
                name="test_case_one_per_run",
            ),
        ]

    def __str__(self):
        return self.name


class TestCaseResult(models.TextChoices):
    RUNNING = "running", _("Running")
    PASSED = "passed", _("Passed")
    FAILED = "failed", _("Failed")


class TestCaseRun(models.Model):
    """One execution of a test case: the run it started and, once that run has
    settled, passed or failed with the differences."""

    __test__ = False

    test_case = models.ForeignKey(
        TestCase, on_delete=models.CASCADE, related_name="executions"
    )
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.ForeignKey(
        "automations.AutomationVersion", on_delete=models.CASCADE, related_name="+"
    )
    # the executions started together (one suite run share a batch id)
    batch = models.UUIDField()
    result = models.CharField(
        max_length=20, choices=TestCaseResult.choices, default=TestCaseResult.RUNNING
    )
    differences = models.JSONField(default=list, blank=True)
    started_by_label = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(result__in=TestCaseResult.values),
                name="test_case_run_result_valid",
            ),
        ]
        indexes = [
            # the suite page: the executions of one batch
            models.Index(fields=["batch"], name="test_case_run_batch"),
        ]

    def __str__(self):
        return f"{self.test_case} ({self.result})"
