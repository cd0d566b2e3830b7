"""The per-run SLA marker (registered with the runs app by runs.models)."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class SlaKind(models.TextChoices):
    LEAD_TIME = "lead_time", _("Lead time over the automation's sla_seconds")
    PENDING_AGE = "pending_age", _("A work item pending over RUNS_SLA_PENDING_SECONDS")


class RunSlaBreach(models.Model):
    """A run that broke its SLA, recorded once: the row is the claim (its primary
    key is the run), so however many housekeeping passes see the breach, the
    owners are told and the webhook fires once."""

    run = models.OneToOneField(
        "runs.Run",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="sla_breach",
    )
    kind = models.CharField(max_length=20, choices=SlaKind.choices)
    breached_at = models.DateTimeField(default=timezone.now)
    # what was seen: the lead time or the pending age, in seconds, and the limit
    seconds = models.FloatField()
    limit_seconds = models.PositiveIntegerField()

    class Meta:
        app_label = "runs"
        verbose_name = "SLA breach"
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=SlaKind.values), name="run_sla_breach_kind_valid"
            ),
        ]

    def __str__(self):
        return f"run {self.run_id}: {self.kind}"
