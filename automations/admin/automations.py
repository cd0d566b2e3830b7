"""Automations (their versions inline), triggers, run now, definitions import.

A version's own page (steps, publish, diff) is in `versions`."""

import json

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from ..definition_files import (
    DefinitionsFileError,
    definitions_import,
    definitions_parse,
    definitions_size_check,
)
from ..definitions import automation_export
from ..models import Automation, AutomationVersion, Trigger, TriggerKind
from ..services import schedules_sync
from ..workspaces import may, may_somewhere
from .forms import DefinitionsConfirmForm, DefinitionsUploadForm, RunNowForm
from .scoping import WorkspaceScopedAdmin, WorkspaceScopedInline

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


class TriggerInline(WorkspaceScopedInline, admin.TabularInline):
    model = Trigger
    extra = 0
    fields = [
        "kind",
        "cron",
        "address",
        "senders",
        "subject_pattern",
        "enabled",
        "schedule_next_run",
        "last_fired_at",
    ]
    readonly_fields = ["schedule_next_run", "last_fired_at"]

    @admin.display(description="django-q2 schedule")
    def schedule_next_run(self, trigger):
        return _schedule_next_run(trigger)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("schedule")


class VersionInline(WorkspaceScopedInline, admin.TabularInline):
    model = AutomationVersion
    extra = 0
    fields = ["number", "published_at", "run_timeout_seconds", "created_at", "tools"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

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
    list_display = ["name", "slug", "status", "updated_at", "run_now_link"]
    list_filter = ["status"]
    search_fields = ["=slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["owners"]
    readonly_fields = ["status", "created_at", "updated_at", "recent_runs"]
    inlines = [VersionInline, TriggerInline]
    change_form_template = "admin/automations/automation/change_form.html"
    change_list_template = "admin/automations/automation/change_list.html"

    class Media:
        css = {"all": ["runs/admin.css"]}

    def get_readonly_fields(self, request, obj=None):
        # moving an automation moves its whole history: superusers only
        if obj is not None and not request.user.is_superuser:
            return [*self.readonly_fields, "workspace"]
        return self.readonly_fields

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
                    r.created_at.strftime("%Y-%m-%d %H:%M"),
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
