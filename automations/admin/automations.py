"""Automations (their versions inline), triggers, run now, definitions import.

A version's own page (steps, publish, diff) is in `versions`."""

import json

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Prefetch, Subquery
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

from ..definition_files import (
    DefinitionsFileError,
    definitions_import,
    definitions_parse,
    definitions_size_check,
)
from ..definitions import automation_export
from ..models import (
    Automation,
    AutomationStatus,
    AutomationVersion,
    Trigger,
    TriggerKind,
)
from ..services import schedules_sync
from ..workspaces import VIEW_RUNS, may, may_somewhere, scoped
from .forms import DefinitionsConfirmForm, DefinitionsUploadForm, RunNowForm
from .scoping import WorkspaceScopedAdmin, WorkspaceScopedInline
from .versions import version_author, version_status, with_current_number

TRIGGER_PERMISSION = "runs.trigger_run"
IMPORT_PERMISSION = "automations.add_automation"


def _schedule_next_run(trigger):
    schedule = trigger.schedule
    if schedule is None:
        return "-" if trigger.kind == TriggerKind.SCHEDULE else ""
    return format_html(
        '<a href="{}">next {}</a>',
        reverse("admin:django_q_schedule_change", args=[schedule.pk]),
        schedule.next_run.strftime("%Y-%m-%d %H:%M %Z") if schedule.next_run else "-",
    )


class TriggerForm(forms.ModelForm):
    class Meta:
        model = Trigger
        fields = "__all__"
        widgets = {
            "cron": forms.TextInput(attrs={"size": 16}),
            "address": forms.EmailInput(attrs={"size": 32}),
            "senders": forms.Textarea(attrs={"rows": 2, "cols": 40}),
            "subject_pattern": forms.TextInput(attrs={"size": 32}),
        }
        help_texts = {
            "cron": "Five fields, in the server's time zone: 0 6 * * 1.",
            "senders": "A JSON list of addresses allowed to start it, e.g. "
            '["ops@example.com"]; empty: anyone.',
            "subject_pattern": "A regular expression the subject must match.",
        }


class TriggerInline(WorkspaceScopedInline, admin.StackedInline):
    """One compact block per trigger; trigger_kinds.js shows only the fields of
    the trigger's kind (cron and schedule for schedules, address, senders and
    subject for e-mail, nothing more for manual and API)."""

    model = Trigger
    form = TriggerForm
    extra = 0
    fields = [
        ("kind", "enabled"),
        "cron",
        "address",
        "senders",
        "subject_pattern",
        "schedule_next_run",
        "last_fired_at",
    ]
    readonly_fields = ["schedule_next_run", "last_fired_at"]
    classes = ["trigger-inline"]

    @admin.display(description="django-q2 schedule")
    def schedule_next_run(self, trigger):
        return _schedule_next_run(trigger)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("schedule")


class VersionInline(WorkspaceScopedInline, admin.TabularInline):
    model = AutomationVersion
    extra = 0
    fields = [
        "number",
        "status",
        "author",
        "published_at",
        "run_timeout_seconds",
        "created_at",
        "tools",
    ]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def get_queryset(self, request):
        return with_current_number(super().get_queryset(request)).select_related(
            "automation", "created_by"
        )

    @admin.display(description="Status")
    def status(self, version):
        return version_status(version)

    @admin.display(description="Author")
    def author(self, version):
        return version_author(version)

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="")
    def tools(self, version):
        links = []
        if version.number > 1:
            links.append(
                (
                    reverse(
                        "admin:automations_automationversion_diff", args=[version.pk]
                    ),
                    f"diff with v{version.number - 1}",
                )
            )
        if not version.is_published:
            links.append(
                (
                    reverse(
                        "admin:automations_automationversion_publish", args=[version.pk]
                    ),
                    "publish",
                )
            )
        return format_html_join(" · ", '<a href="{}">{}</a>', links)


@admin.register(Automation)
class AutomationAdmin(WorkspaceScopedAdmin):
    workspace_path = "workspace"
    list_display = [
        "name",
        "slug",
        "status",
        "last_run",
        "next_run",
        "updated_at",
        "run_now_link",
    ]
    list_filter = ["status"]
    search_fields = ["=slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    # a plain multiple select: Django's filter_horizontal widget carries an
    # aria-label on a bare span (axe: aria-prohibited-attr, serious)
    readonly_fields = ["status", "created_at", "updated_at", "recent_runs"]
    inlines = [VersionInline, TriggerInline]
    change_form_template = "admin/automations/automation/change_form.html"
    change_list_template = "admin/automations/automation/change_list.html"

    class Media:
        css = {"all": ["runs/admin.css"]}
        js = ["automations/trigger_kinds.js"]

    def get_changelist(self, request, **kwargs):
        # the list only: its last-run and next-run columns
        request.automations_list_columns = True
        return super().get_changelist(request, **kwargs)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if getattr(request, "automations_list_columns", False):
            queryset = self._with_last_and_next_run(queryset, request.user)
        return queryset

    @staticmethod
    def _with_last_and_next_run(queryset, user):
        """The list's last run (one subquery per column, index
        run_automation_number), among the runs `user` may see, and the enabled
        schedule triggers (one prefetch): the same queries for 1 or 100 rows."""
        # by name, not import: automations loads before runs (apps registry)
        Run = apps.get_model("runs", "Run")
        visible = scoped(
            Run.objects.all(), user, VIEW_RUNS, path="automation__workspace"
        )
        last = visible.filter(automation=OuterRef("pk")).order_by("-number")
        return queryset.annotate(
            last_run_id=Subquery(last.values("pk")[:1]),
            last_run_number=Subquery(last.values("number")[:1]),
            last_run_state=Subquery(last.values("state")[:1]),
            last_run_created_at=Subquery(last.values("created_at")[:1]),
        ).prefetch_related(
            Prefetch(
                "triggers",
                queryset=Trigger.objects.filter(
                    kind=TriggerKind.SCHEDULE, enabled=True
                ),
                to_attr="schedule_triggers",
            )
        )

    @admin.display(description="Last run", ordering="last_run_created_at")
    def last_run(self, automation):
        if getattr(automation, "last_run_id", None) is None:
            return "-"
        from runs.admin.display import state_badge  # runs' admin loads after ours

        return format_html(
            '<a href="{}">#{}</a> {} {}',
            reverse("admin:runs_run_change", args=[automation.last_run_id]),
            automation.last_run_number,
            state_badge(automation.last_run_state),
            date_format(
                timezone.localtime(automation.last_run_created_at),
                "DATETIME_FORMAT",
            ),
        )

    @admin.display(description="Next run")
    def next_run(self, automation):
        # a schedule starts runs of published automations only (schedules_sync)
        if automation.status != AutomationStatus.PUBLISHED:
            return "-"
        triggers = getattr(automation, "schedule_triggers", None)
        if triggers is None:
            triggers = automation.triggers.filter(
                kind=TriggerKind.SCHEDULE, enabled=True
            )
        times = [t for t in (trigger.next_fire_at() for trigger in triggers) if t]
        if not times:
            return "-"
        return date_format(min(times), "DATETIME_FORMAT")

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        # "Recent runs" names runs: only for who may see them in its workspace
        if obj is not None and not may(request.user, VIEW_RUNS, obj.workspace_id):
            fields.remove("recent_runs")
        # moving an automation moves its whole history: superusers only
        if obj is not None and not request.user.is_superuser:
            fields.append("workspace")
        return fields

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        schedules_sync()  # triggers edited here: mirror them into django-q2 now

    @admin.display(description="")
    def run_now_link(self, automation):
        return format_html(
            '<a href="{}">Run now</a>',
            reverse("admin:automations_automation_run_now", args=[automation.pk]),
        )

    @admin.display(description="Recent runs")
    def recent_runs(self, automation):
        if automation.pk is None:
            return "-"
        from runs.admin.display import state_badge
        from runs.models import Run

        runs = (
            Run.objects.filter(automation=automation)
            .select_related("version")
            .order_by("-number")[:10]
        )
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">#{}</a></td><td>v{}</td><td>{}</td><td>{}</td>'
            "<td>{}</td></tr>",
            (
                (
                    reverse("admin:runs_run_change", args=[r.pk]),
                    r.number,
                    r.version.number,
                    state_badge(r.state),
                    date_format(timezone.localtime(r.created_at), "DATETIME_FORMAT"),
                    r.run_by_label,
                )
                for r in runs
            ),
        )
        more = reverse("admin:runs_run_changelist") + (
            f"?automation__id__exact={automation.pk}&archived=all"
        )
        return format_html(
            '<table class="recent-runs">{}</table><a href="{}">all runs</a>', rows, more
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/run-now/",
                view(self.run_now_view),
                name="automations_automation_run_now",
            ),
            path(
                "<path:object_id>/definition/",
                view(self.definition_view),
                name="automations_automation_definition",
            ),
            path(
                "import-definitions/",
                view(self.import_definitions_view),
                name="automations_automation_import_definitions",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "may_import_definitions": may_somewhere(request.user, IMPORT_PERMISSION),
        }
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        automation = self.get_object(request, unquote(object_id))
        extra_context = {
            **(extra_context or {}),
            "may_run": automation is not None
            and may(request.user, TRIGGER_PERMISSION, automation.workspace_id),
            "may_view_report": automation is not None
            and may(request.user, VIEW_RUNS, automation.workspace_id),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _automation(self, request, object_id):
        automation = self.get_object(request, unquote(object_id))
        if automation is None:
            raise Http404("no such automation")
        return automation

    def run_now_view(self, request, object_id):
        """Start a manual run with the inputs given (validated JSON)."""
        automation = self._automation(request, object_id)  # 404: not visible
        if not may(request.user, TRIGGER_PERMISSION, automation.workspace_id):
            raise PermissionDenied
        form = RunNowForm(
            request.POST if request.method == "POST" else None, automation=automation
        )
        if request.method == "POST" and form.is_valid():
            from runs.services import RunsError, run_start
            from runs.states import RunState

            try:
                run = run_start(
                    automation=automation,
                    inputs=form.cleaned_data["inputs"],
                    trigger_kind=TriggerKind.MANUAL,
                    actor=request.user,
                    version=form.cleaned_data["version"],
                    priority=form.cleaned_data["priority"],
                )
            except RunsError as exc:
                form.add_error(None, str(exc))
            else:
                started = (
                    f"Run #{run.number} waits for a free slot "
                    f"(max concurrent runs {automation.max_concurrent_runs})."
                    if run.state == RunState.PENDING
                    and automation.max_concurrent_runs is not None
                    else f"Started run #{run.number}."
                )
                self.message_user(request, started, messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:runs_run_change", args=[run.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": automation,
            "form": form,
            "title": f"Run {automation} now",
        }
        return TemplateResponse(
            request, "admin/automations/automation/run_now.html", context
        )

    def definition_view(self, request, object_id):
        """The latest version's definition as a JSON file (import format)."""
        automation = self._automation(request, object_id)
        if automation.latest_version() is None:
            raise Http404("this automation has no version yet")
        body = json.dumps(automation_export(automation), indent=2)
        response = HttpResponse(body, content_type="application/json")
        response["Content-Disposition"] = (
            f'attachment; filename="{automation.slug}.json"'
        )
        return response

    def import_definitions_view(self, request):
        """Upload → preview (a rolled-back import, errors per definition) → confirm
        (all or nothing)."""
        # each definition's workspace is checked on import (definitions.py)
        if not may_somewhere(request.user, IMPORT_PERMISSION):
            raise PermissionDenied
        upload = DefinitionsUploadForm()
        outcomes, payload, errors = None, "", False
        if request.method == "POST" and "payload" in request.POST:
            confirm = DefinitionsConfirmForm(request.POST)
            if confirm.is_valid():
                try:
                    definitions = definitions_parse(confirm.cleaned_data["payload"])
                except DefinitionsFileError as exc:
                    self.message_user(request, str(exc), messages.ERROR)
                else:
                    outcomes = definitions_import(definitions, actor=request.user)
                    failed = [o for _, o in outcomes if isinstance(o, str)]
                    if not failed:
                        self.message_user(
                            request,
                            "Imported: " + "; ".join(o.summary() for _, o in outcomes),
                            messages.SUCCESS,
                        )
                        return HttpResponseRedirect(
                            reverse("admin:automations_automation_changelist")
                        )
                    self.message_user(
                        request,
                        "Nothing imported: " + "; ".join(failed),
                        messages.ERROR,
                    )
        elif request.method == "POST":
            upload = DefinitionsUploadForm(request.POST, request.FILES)
            if upload.is_valid():
                file = upload.cleaned_data["file"]
                try:
                    definitions_size_check(file.size)  # before reading it
                    raw = file.read()
                    definitions = definitions_parse(raw)
                except DefinitionsFileError as exc:
                    upload.add_error("file", str(exc))
                else:
                    outcomes = definitions_import(
                        definitions, actor=request.user, dry_run=True
                    )
                    errors = any(isinstance(o, str) for _, o in outcomes)
                    payload = raw.decode("utf-8")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import automation definitions",
            "form": upload,
            "outcomes": [
                (
                    i,
                    o if isinstance(o, str) else None,
                    None if isinstance(o, str) else o,
                )
                for i, o in (outcomes or [])
            ],
            "errors": errors,
            "payload": payload,
        }
        return TemplateResponse(
            request, "admin/automations/automation/import_definitions.html", context
        )


@admin.register(Trigger)
class TriggerAdmin(WorkspaceScopedAdmin):
    list_display = ["__str__", "kind", "enabled", "schedule_next_run", "last_fired_at"]
    list_filter = ["kind", "enabled"]
    list_select_related = ["automation", "schedule"]
    readonly_fields = ["schedule", "last_fired_at"]

    @admin.display(description="django-q2 schedule")
    def schedule_next_run(self, trigger):
        return _schedule_next_run(trigger)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        schedules_sync()
