"""Admin pages of issue 8: the period report and the test suite of an automation.

Both are custom views (wired by `RunAdmin.get_urls` and `TestCaseAdmin.get_urls`)
that read through `runs.reports` and write through `runs.regression.services`.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from automations.admin.scoping import WorkspaceScopedAdmin
from automations.workspaces import VIEW_RUNS, automations_visible_to, may, may_somewhere

from ..api.reports import report_csv_response
from ..regression.models import TestCase, TestCaseRun
from ..regression.services import suite_refresh, test_suite_run
from ..reports import report_from_query
from ..selectors import STATE_COLOURS, runs_for
from ..services import RunsError
from ..states import RunItemOutcome, WorkItemState
from .charts import legend_html, outcomes_bar_html
from .display import ITEM_COLOURS

# run item outcomes in the work items' colours (one palette, runs.admin.display)
OUTCOME_COLOURS = {
    RunItemOutcome.SUCCEEDED: ITEM_COLOURS[WorkItemState.DONE],
    RunItemOutcome.FAILED: ITEM_COLOURS[WorkItemState.FAILED],
    RunItemOutcome.SKIPPED: ITEM_COLOURS[WorkItemState.PENDING],
    RunItemOutcome.AWAITING_APPROVAL: ITEM_COLOURS[WorkItemState.AWAITING_INPUT],
    RunItemOutcome.IDEMPOTENT_REPLAY: ITEM_COLOURS[WorkItemState.IN_PROGRESS],
}
SUITE_PERMISSION = "automations.change_automation"


def report_view(model_admin, request):
    """The period report page; `?format=csv` downloads it, `?print=1` is the
    printable page (no admin chrome, print stylesheet)."""
    if not may_somewhere(request.user, VIEW_RUNS):
        raise PermissionDenied
    form, report = report_from_query(request.GET, within=runs_for(request.user))
    if report is not None and request.GET.get("format") == "csv":
        return report_csv_response(report)
    rows = []
    if report is not None:
        for row in report.rows:
            rows.append(
                {
                    "row": row,
                    "states_bar": outcomes_bar_html(
                        row.states, row.runs, report.states
                    ),
                    "outcomes_bar": outcomes_bar_html(
                        row.outcomes,
                        row.run_items or 1,
                        report.outcomes,
                        OUTCOME_COLOURS,
                    ),
                    "state_counts": [
                        (s, row.states.get(s.value, 0)) for s in report.states
                    ],
                    "outcome_counts": [
                        (o, row.outcomes.get(o.value, 0)) for o in report.outcomes
                    ],
                }
            )
    query = request.GET.copy()
    query.pop("print", None)
    query.pop("format", None)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Period report",
        "form": form,
        "report": report,
        "rows": rows,
        "state_legend": legend_html(report.states if report else [], STATE_COLOURS),
        "outcome_legend": legend_html(
            report.outcomes if report else [], OUTCOME_COLOURS
        ),
        "state_totals": [
            (s, report.state_totals.get(s.value, 0)) for s in report.states
        ]
        if report
        else [],
        "outcome_totals": [
            (o, report.outcome_totals.get(o.value, 0)) for o in report.outcomes
        ]
        if report
        else [],
        "query": query.urlencode(),
        "printable": bool(request.GET.get("print")),
    }
    template = (
        "admin/runs/report_print.html"
        if context["printable"]
        else "admin/runs/report.html"
    )
    return TemplateResponse(request, template, context)


class SuiteForm(forms.Form):
    version = forms.ModelChoiceField(queryset=None, empty_label=None)

    def __init__(self, *args, automation, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["version"]
        field.queryset = automation.versions.order_by("-number")
        field.label_from_instance = lambda v: (
            f"v{v.number} ({'published' if v.is_published else 'draft'})"
        )
        field.help_text = "Drafts included: the suite's runs are manual."


@admin.register(TestCase)
class TestCaseAdmin(WorkspaceScopedAdmin):
    list_display = [
        "name",
        "automation",
        "source_run_number",
        "expected_state",
        "created_by_label",
        "created_at",
        "suite_link",
    ]
    list_filter = ["automation"]
    list_select_related = ["automation"]
    readonly_fields = [
        "automation",
        "source_run",
        "source_run_number",
        "inputs",
        "expected_state",
        "expected",
        "created_by",
        "created_by_label",
        "created_at",
    ]
    fields = ["name", *readonly_fields]

    def has_add_permission(self, request):
        return False  # cases come from runs: "Add as test case" on the run page

    @admin.display(description="Suite")
    def suite_link(self, case):
        from django.utils.html import format_html

        url = reverse("admin:runs_testcase_suite", args=[case.automation_id])
        return format_html('<a href="{}">Run the suite</a>', url)

    def get_urls(self):
        return [
            path(
                "suite/<int:automation_id>/",
                self.admin_site.admin_view(self.suite_view),
                name="runs_testcase_suite",
            ),
            *super().get_urls(),
        ]

    def suite_view(self, request, automation_id):
        """Run an automation's test cases against a version; show the results."""
        if not may_somewhere(request.user, SUITE_PERMISSION):
            raise PermissionDenied
        automation = get_object_or_404(
            automations_visible_to(request.user, SUITE_PERMISSION, VIEW_RUNS),
            pk=automation_id,
        )
        if not may(request.user, SUITE_PERMISSION, automation.workspace_id):
            raise PermissionDenied
        form = SuiteForm(
            request.POST if request.method == "POST" else None, automation=automation
        )
        if request.method == "POST" and form.is_valid():
            try:
                result = test_suite_run(
                    automation, version=form.cleaned_data["version"], actor=request.user
                )
            except RunsError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Suite started: {result.summary()}")
                url = reverse("admin:runs_testcase_suite", args=[automation.pk])
                return HttpResponseRedirect(f"{url}?batch={result.batch}")
        batch = request.GET.get("batch")
        if batch is None:
            batch = (
                TestCaseRun.objects.filter(test_case__automation=automation)
                .order_by("-id")
                .values_list("batch", flat=True)
                .first()
            )
        try:
            executions = suite_refresh(batch) if batch else []
        except Exception as exc:  # a malformed batch id in the URL
            raise Http404("no such suite run") from exc
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Test suite of {automation}",
            "automation": automation,
            "cases": TestCase.objects.filter(automation=automation).order_by("id"),
            "form": form,
            "executions": executions,
            "passed": sum(e.result == "passed" for e in executions),
            "failed": sum(e.result == "failed" for e in executions),
            "running": sum(e.result == "running" for e in executions),
        }
        return TemplateResponse(request, "admin/runs/test_suite.html", context)
