"""Automation definitions: what may run, pinned per version.

Definitions (Automation, AutomationVersion, Step, Trigger) stay apart from executions
(the `runs` app): a run pins the version in effect when it started, so editing an
automation never rewrites the history of what ran.
"""

import datetime
from urllib.parse import quote

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class VersionFrozen(Exception):
    """A published version's steps cannot change: make a new version instead."""


class VersionStatus(models.TextChoices):
    """Where a version stands, derived (AutomationVersion.status_in), not stored:
    draft (editable, runs only by hand), published (the version triggers use),
    frozen (published once, since superseded: kept as runs pinned it), retired
    (a published version of a retired automation)."""

    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    FROZEN = "frozen", _("Frozen")
    RETIRED = "retired", _("Retired")


class AutomationStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    RETIRED = "retired", _("Retired")


class TriggerKind(models.TextChoices):
    MANUAL = "manual", _("Manual")
    SCHEDULE = "schedule", _("Schedule")
    EMAIL = "email", _("E-mail")
    API = "api", _("API")


# a year: longer is no SLA anyone alerts on
SLA_SECONDS_MAX = 366 * 86400
# more runs at once than this is no limit anyone needs (and the admission count
# stays a small number)
MAX_CONCURRENT_RUNS_MAX = 10_000
# calls one step run makes at once (runs.engine.in_flight)
MAX_IN_FLIGHT = 256

DEFAULT_WORKSPACE = "default"


class WorkspaceRole(models.TextChoices):
    """A role held in one workspace; each means the permissions of the group of the
    same name (migration runs.0002 and runs.0015), there only."""

    VIEWER = "viewer", _("Viewer")
    OPERATOR = "operator", _("Operator")
    APPROVER = "approver", _("Approver")
    AUTHOR = "author", _("Author")


class Workspace(models.Model):
    """A team's share of the product (UiPath folder, Robocorp workspace): its
    automations, and with them their runs, items, files, reports and addresses.
    Nothing of one workspace is visible or changeable from another
    (`automations.workspaces` holds the rule)."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.name or self.slug


def default_workspace_id() -> int:
    """The `default` workspace (made on first use: a fresh or flushed database)."""
    workspace, _ = Workspace.objects.get_or_create(
        slug=DEFAULT_WORKSPACE, defaults={"name": "Default"}
    )
    return workspace.pk


class Membership(models.Model):
    """A person's role in one workspace (the groups stay roles in every one)."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="workspace_memberships",
    )
    role = models.CharField(max_length=20, choices=WorkspaceRole.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace", "user", "role"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "user", "role"], name="membership_unique"
            ),
            models.CheckConstraint(
                condition=Q(role__in=WorkspaceRole.values),
                name="membership_role_valid",
            ),
        ]

    def __str__(self):
        return f"{self.user} · {self.role} in {self.workspace.slug}"


class Automation(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    workspace = models.ForeignKey(
        Workspace,
        on_delete=models.PROTECT,
        related_name="automations",
        default=default_workspace_id,
    )
    description = models.TextField(blank=True)
    owners = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="owned_automations"
    )
    status = models.CharField(
        max_length=20, choices=AutomationStatus.choices, default=AutomationStatus.DRAFT
    )
    # lead time a run may take before its owners are told (housekeeping checks it;
    # runs.ops.sla); None: no SLA
    sla_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(SLA_SECONDS_MAX)],
        help_text="Lead time in seconds after which a run's owners are told "
        "(once per run); empty: no SLA.",
    )
    # runs working at once (runs.engine.admission); further runs wait in
    # `pending` and start by priority, then age. None: no limit
    max_concurrent_runs = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CONCURRENT_RUNS_MAX)],
        help_text="How many runs may work at once; further runs wait in pending "
        "and start by priority, then age. Empty: no limit.",
    )
    # four eyes on definitions (automations.services.version_publish): the person
    # who made a version may not publish it
    publish_needs_second_person = models.BooleanField(
        default=False,
        db_default=False,
        verbose_name="publishing needs a second person",
        help_text="Whoever made a version cannot publish it themself.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=AutomationStatus.values),
                name="automation_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(max_concurrent_runs__isnull=True)
                | Q(max_concurrent_runs__gte=1),
                name="automation_max_concurrent_runs_gte_1",
            ),
        ]

    def __str__(self):
        return self.name

    def latest_version(self):
        return self.versions.order_by("-number").first()

    def latest_published_version(self):
        return (
            self.versions.filter(published_at__isnull=False).order_by("-number").first()
        )


class AutomationVersion(models.Model):
    """One numbered version of an automation's steps; immutable once published."""

    automation = models.ForeignKey(
        Automation, on_delete=models.PROTECT, related_name="versions"
    )
    number = models.PositiveIntegerField()
    run_timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    # Hash of the canonical definition (steps and timeout): an import that hashes the
    # same changes nothing; a different hash makes a new version.
    definition_hash = models.CharField(max_length=64, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    # who made it (an import's actor, the admin user who added it); None: not known
    # (made before the column, or by the system). Four eyes compares it on publish.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["automation", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["automation", "number"], name="version_number_unique"
            ),
            models.CheckConstraint(
                condition=Q(number__gte=1), name="version_number_gte_1"
            ),
        ]

    def __str__(self):
        return f"{self.automation.slug} v{self.number}"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    def status_in(self, *, current_number, automation_status) -> str:
        """This version's VersionStatus, given the number of the automation's
        latest published version and the automation's status (one query for a
        whole list of versions, not one per version)."""
        if not self.is_published:
            return VersionStatus.DRAFT
        if automation_status == AutomationStatus.RETIRED:
            return VersionStatus.RETIRED
        if self.number == current_number:
            return VersionStatus.PUBLISHED
        return VersionStatus.FROZEN

    @property
    def status(self) -> str:
        latest = self.automation.latest_published_version()
        return self.status_in(
            current_number=latest.number if latest else None,
            automation_status=self.automation.status,
        )


def result_url_fill(template: str, result_ref: str) -> str:
    if not (template and result_ref):
        return ""
    if not template.lower().startswith(("https://", "http://")):
        return ""
    try:
        return template.format(result_ref=quote(str(result_ref), safe=""))
    except (KeyError, IndexError, ValueError, AttributeError):
        return ""


class Step(models.Model):
    version = models.ForeignKey(
        AutomationVersion, on_delete=models.CASCADE, related_name="steps"
    )
    order = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    action = models.CharField(max_length=200)
    parameters = models.JSONField(default=dict, blank=True)
    batch_size = models.PositiveIntegerField(default=100)
    concurrency = models.PositiveIntegerField(default=1)
    max_attempts = models.PositiveIntegerField(default=1)
    retry_backoff_seconds = models.PositiveIntegerField(default=10)
    item_timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    # how many items one step run calls its action on at once (runs.engine.in_flight)
    # db_default: rows written by code that predates the column (a rolling deploy,
    # a migration's historical models) get 1 too
    max_in_flight = models.PositiveIntegerField(
        default=1,
        db_default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_IN_FLIGHT)],
        help_text="Items one step run calls the action on at once "
        f"(1..{MAX_IN_FLIGHT}, at most the batch size).",
    )
    # A registered predicate ({"predicate": "key"}) or a small declarative filter
    # ({"field": "status", "op": "eq", "value": "active"}); never code to eval.
    condition = models.JSONField(null=True, blank=True)
    requires_approval = models.BooleanField(default=False)
    # a deep link to what an action made: `{result_ref}` is filled with the run
    # item's result reference (checked at import: http(s) only)
    # (db_default: rows written by code that predates the column get "")
    result_url = models.CharField(max_length=500, blank=True, default="", db_default="")

    class Meta:
        ordering = ["version", "order"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "order"], name="step_order_unique"
            ),
            models.UniqueConstraint(
                fields=["version", "name"], name="step_name_unique"
            ),
            models.CheckConstraint(
                condition=Q(batch_size__gte=1), name="step_batch_gte_1"
            ),
            models.CheckConstraint(
                condition=Q(concurrency__gte=1), name="step_concurrency_gte_1"
            ),
            models.CheckConstraint(
                condition=Q(max_attempts__gte=1), name="step_max_attempts_gte_1"
            ),
            models.CheckConstraint(
                condition=Q(max_in_flight__gte=1), name="step_max_in_flight_gte_1"
            ),
        ]

    def __str__(self):
        return f"{self.order}. {self.name} ({self.action})"

    def clean(self):
        super().clean()
        if (
            self.max_in_flight
            and self.batch_size
            and self.max_in_flight > self.batch_size
        ):
            raise ValidationError(
                {"max_in_flight": "At most the batch size: a step run calls one batch."}
            )

    def save(self, *args, **kwargs):
        self._refuse_if_frozen()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self._refuse_if_frozen()
        return super().delete(*args, **kwargs)

    def result_url_for(self, result_ref: str) -> str:
        """The deep link of a run item's result reference: `result_url` with
        `{result_ref}` filled (URL-quoted), or '' (no template, no reference, or a
        template that is not http(s): never a javascript: link)."""
        return result_url_fill(self.result_url, result_ref)

    def _refuse_if_frozen(self):
        if AutomationVersion.objects.filter(
            pk=self.version_id, published_at__isnull=False
        ).exists():
            raise VersionFrozen(
                f"{self.version} is published: its steps cannot change; "
                "import or create a new version instead"
            )


class Trigger(models.Model):
    """How an automation may be started; schedules are mirrored in django-q2."""

    automation = models.ForeignKey(
        Automation, on_delete=models.CASCADE, related_name="triggers"
    )
    kind = models.CharField(max_length=20, choices=TriggerKind.choices)
    cron = models.CharField(max_length=100, blank=True)
    address = models.CharField(max_length=254, blank=True)
    senders = models.JSONField(default=list, blank=True)
    subject_pattern = models.CharField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True)
    schedule = models.OneToOneField(
        "django_q.Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs_trigger",
    )
    # Last fire time a schedule run was started for: with the unique
    # (trigger, fired_at) on runs, one run per fire time however many clusters run.
    last_fired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["automation", "kind", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=TriggerKind.values), name="trigger_kind_valid"
            ),
            models.CheckConstraint(
                condition=~Q(kind=TriggerKind.SCHEDULE) | ~Q(cron=""),
                name="trigger_schedule_has_cron",
            ),
            models.CheckConstraint(
                condition=~Q(kind=TriggerKind.EMAIL) | ~Q(address=""),
                name="trigger_email_has_address",
            ),
        ]

    def __str__(self):
        if self.kind == TriggerKind.SCHEDULE:
            return f"{self.automation.slug}: schedule {self.cron}"
        if self.kind == TriggerKind.EMAIL:
            return f"{self.automation.slug}: e-mail to {self.address}"
        return f"{self.automation.slug}: {self.get_kind_display()}"

    def clean(self):
        problem = self.address_problem()
        if problem:
            raise ValidationError({"address": problem})

    def address_problem(self) -> str:
        """An e-mail address belongs to one workspace: a message to it starts
        automations of that workspace only (runs.mail.matching)."""
        if self.kind != TriggerKind.EMAIL or not self.address or not self.automation_id:
            return ""
        workspace_id = (
            Automation.objects.filter(pk=self.automation_id)
            .values_list("workspace_id", flat=True)
            .first()
        )
        taken = (
            Trigger.objects.filter(kind=TriggerKind.EMAIL, address__iexact=self.address)
            .exclude(automation__workspace_id=workspace_id)
            .exists()
        )
        return "this address belongs to another workspace" if taken else ""

    def next_fire_at(self, now=None) -> datetime.datetime | None:
        """When this schedule fires next (cron in TIME_ZONE, as runs.tasks reads
        it); None for other kinds, a disabled trigger or a cron that never fires."""
        if self.kind != TriggerKind.SCHEDULE or not self.enabled or not self.cron:
            return None
        start = timezone.localtime(now)
        try:
            # 10 years: the horizon an import checks a cron against
            return croniter(self.cron, start, max_years_between_matches=10).get_next(
                datetime.datetime
            )
        except (CroniterBadCronError, CroniterBadDateError, ValueError):
            return None

    def definition(self) -> dict:
        """This trigger as it stands in an automation definition file."""
        data = {"kind": self.kind}
        if self.kind == TriggerKind.SCHEDULE:
            data["cron"] = self.cron
        if self.kind == TriggerKind.EMAIL:
            data["address"] = self.address
            if self.senders:
                data["senders"] = self.senders
            if self.subject_pattern:
                data["subject"] = self.subject_pattern
        return data


class Subject(models.Model):
    """A record automations act on or about (an account, a supplier, a monitor).

    Subject sources select these for `builtin.select_subjects`; each run item names the
    subject it acted on by `kind:reference`.
    """

    # subjects belong to no automation, so to a workspace of their own: sources
    # select those of the run's workspace
    workspace = models.ForeignKey(
        Workspace,
        on_delete=models.PROTECT,
        related_name="subjects",
        default=default_workspace_id,
    )
    kind = models.CharField(max_length=50)
    reference = models.CharField(max_length=200)
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=50, default="active")
    due_on = models.DateField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["kind", "reference"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "kind", "reference"],
                name="subject_ws_kind_reference_unique",
            ),
        ]
        indexes = [
            # subject sources: a workspace's subjects of a kind due before a date
            models.Index(
                fields=["workspace", "kind", "status", "due_on"],
                name="subject_ws_kind_due",
            ),
        ]

    def __str__(self):
        return f"{self.kind}:{self.reference}"

    def as_payload(self) -> dict:
        return {
            "subject": str(self),
            "kind": self.kind,
            "reference": self.reference,
            "name": self.name,
            "status": self.status,
            "due_on": self.due_on.isoformat() if self.due_on else None,
            **self.attributes,
        }
