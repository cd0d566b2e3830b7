"""The period report: what automation did between two instants.

Runs created in [start, end) are grouped by automation and version; for each group
the report counts runs per state and run items per outcome, sums the actions
invoked and subjects matched (the run counters), and lists the most frequent
failure causes, each counted by work item (an item retried twice is one
failure, not three). Every figure is aggregated in the database (GROUP BY): four
queries whatever the number of runs.

Runs the test suite started (`is_test_case` set at start, see runs.regression)
are left out unless asked for. A production run that an operator added as a test
case keeps its place: it did real work, and an audit report must show it.
"""

import datetime
from dataclasses import dataclass, field

from django import forms
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from .api.filters import UtcIsoDateTimeField
from .models import Run, RunItem
from .regression.models import TestCase
from .states import RunItemOutcome, RunState

TOP_CAUSES = 5
# the failure-cause query returns at most this many (group, cause) rows: a flood of
# distinct messages must not make the report unbounded
MAX_CAUSE_ROWS = 2000
FAILED_STATES = (RunState.FAILED, RunState.TIMED_OUT, RunState.UNRESOLVED)


@dataclass
class ReportRow:
    automation_id: int
    automation_slug: str
    automation_name: str
    version_id: int
    version_number: int
    runs: int = 0
    states: dict = field(default_factory=dict)  # run state -> runs
    outcomes: dict = field(default_factory=dict)  # run item outcome -> run items
    actions_invoked: int = 0
    subjects_matched: int = 0
    failed_items: int = 0
    causes: list = field(default_factory=list)  # [(cause, n)], most frequent first
    runs_url: str = ""

    @property
    def run_items(self) -> int:
        return sum(self.outcomes.values())


@dataclass
class PeriodReport:
    start: datetime.datetime
    end: datetime.datetime
    include_test_cases: bool
    rows: list = field(default_factory=list)
    states: list = field(default_factory=lambda: list(RunState))
    outcomes: list = field(default_factory=lambda: list(RunItemOutcome))
    causes: list = field(default_factory=list)  # across all automations

    def _total(self, name) -> int:
        return sum(getattr(row, name) for row in self.rows)

    @property
    def runs(self) -> int:
        return self._total("runs")

    @property
    def actions_invoked(self) -> int:
        return self._total("actions_invoked")

    @property
    def subjects_matched(self) -> int:
        return self._total("subjects_matched")

    @property
    def run_items(self) -> int:
        return self._total("run_items")

    @property
    def failed_items(self) -> int:
        return self._total("failed_items")

    @property
    def state_totals(self) -> dict:
        return _sum_dicts(row.states for row in self.rows)

    @property
    def outcome_totals(self) -> dict:
        return _sum_dicts(row.outcomes for row in self.rows)


def _sum_dicts(dicts) -> dict:
    total: dict = {}
    for counts in dicts:
        for key, n in counts.items():
            total[key] = total.get(key, 0) + n
    return total


def report_runs(start, end, *, include_test_cases: bool = False, within=None):
    """The runs a period report covers (also the drill-down's filter), out of
    `within` (a Run queryset: what the caller may see; default every run)."""
    runs = (Run.objects.all() if within is None else within).filter(
        created_at__gte=start, created_at__lt=end
    )
    if not include_test_cases:
        runs = runs.filter(
            Q(is_test_case=False)
            | Exists(TestCase.objects.filter(source_run=OuterRef("pk")))
        )
    return runs


def runs_changelist_url(
    start,
    end,
    *,
    automation_id=None,
    version_id=None,
    state=None,
    include_test_cases=False,
) -> str:
    """The admin runs list filtered to a report cell (archived runs included)."""
    params = {
        "created_at__gte": start.isoformat(),
        "created_at__lt": end.isoformat(),
        "archived": "all",
    }
    if automation_id is not None:
        params["automation__id__exact"] = automation_id
    if version_id is not None:
        params["version__id__exact"] = version_id
    if state:
        params["state__exact"] = state
    if not include_test_cases:
        # suite runs only: the report leaves out flagged runs that no case came from
        params["test_suite_runs"] = "exclude"
    return f"{reverse('admin:runs_run_changelist')}?{urlencode(params)}"


def period_report(
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    include_test_cases: bool = False,
    within=None,
) -> PeriodReport:
    """Runs created in [start, end) per automation and version (four queries), out
    of `within` (see report_runs)."""
    runs = report_runs(start, end, include_test_cases=include_test_cases, within=within)
    rows: dict = {}
    for values in (
        runs.values(
            "automation_id",
            "automation__slug",
            "automation__name",
            "version_id",
            "version__number",
            "state",
        )
        .annotate(
            n=Count("id"),
            actions=Sum("actions_invoked"),
            subjects=Sum("subjects_matched"),
            failed=Sum("failed_items"),
        )
        .order_by()
    ):
        key = (values["automation_id"], values["version_id"])
        row = rows.get(key)
        if row is None:
            row = rows[key] = ReportRow(
                automation_id=values["automation_id"],
                automation_slug=values["automation__slug"],
                automation_name=values["automation__name"],
                version_id=values["version_id"],
                version_number=values["version__number"],
            )
        row.runs += values["n"]
        row.states[values["state"]] = values["n"]
        row.actions_invoked += values["actions"] or 0
        row.subjects_matched += values["subjects"] or 0
        row.failed_items += values["failed"] or 0
    items = RunItem.objects.filter(run__in=runs.values("pk"))
    for automation_id, version_id, outcome, n in (
        items.values_list("run__automation_id", "run__version_id", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    ):
        row = rows.get((automation_id, version_id))
        if row is not None:
            row.outcomes[outcome] = n
    # a cause counts the work items it failed, not the attempts: an account
    # retried twice is one failure (the outcome counts above stay per run item)
    for automation_id, version_id, cause, n in (
        items.filter(outcome=RunItemOutcome.FAILED)
        .values_list("run__automation_id", "run__version_id", "failure_cause")
        .annotate(n=Count("work_item", distinct=True))
        .order_by("-n", "failure_cause")[:MAX_CAUSE_ROWS]
    ):
        row = rows.get((automation_id, version_id))
        if row is not None and len(row.causes) < TOP_CAUSES:
            row.causes.append((cause or "(no cause recorded)", n))
    ordered = sorted(
        rows.values(),
        key=lambda r: (r.automation_name, r.automation_slug, r.version_number),
    )
    for row in ordered:
        row.runs_url = runs_changelist_url(
            start,
            end,
            automation_id=row.automation_id,
            version_id=row.version_id,
            include_test_cases=include_test_cases,
        )
    report = PeriodReport(
        start=start, end=end, include_test_cases=include_test_cases, rows=ordered
    )
    all_causes = _sum_dicts(dict(row.causes) for row in ordered)
    report.causes = sorted(all_causes.items(), key=lambda c: (-c[1], c[0]))[:TOP_CAUSES]
    return report


def report_csv_rows(report: PeriodReport):
    """Header and rows of the report as CSV (pass to runs.csv.stream_rows)."""
    states = [s.value for s in report.states]
    outcomes = [o.value for o in report.outcomes]
    header = [
        "automation",
        "automation_name",
        "version",
        "runs",
        *[f"runs_{s}" for s in states],
        "run_items",
        *[f"items_{o}" for o in outcomes],
        "actions_invoked",
        "subjects_matched",
        "failed_items",
        "top_failure_causes",
    ]
    rows = [
        [
            row.automation_slug,
            row.automation_name,
            row.version_number,
            row.runs,
            *[row.states.get(s, 0) for s in states],
            row.run_items,
            *[row.outcomes.get(o, 0) for o in outcomes],
            row.actions_invoked,
            row.subjects_matched,
            row.failed_items,
            "; ".join(f"{cause} ({n})" for cause, n in row.causes),
        ]
        for row in report.rows
    ]
    totals = report.state_totals, report.outcome_totals
    rows.append(
        [
            "TOTAL",
            "",
            "",
            report.runs,
            *[totals[0].get(s, 0) for s in states],
            report.run_items,
            *[totals[1].get(o, 0) for o in outcomes],
            report.actions_invoked,
            report.subjects_matched,
            report.failed_items,
            "; ".join(f"{cause} ({n})" for cause, n in report.causes),
        ]
    )
    return header, rows


class PeriodForm(forms.Form):
    """The period of a report (admin page and API): ISO 8601 dates or date-times;
    a date means its midnight; `end` is exclusive. Default: the last 90 days."""

    start = UtcIsoDateTimeField(required=False)
    end = UtcIsoDateTimeField(required=False)
    include_test_cases = forms.BooleanField(
        required=False,
        help_text="Also count the runs the test suite started.",
    )
    workspace = forms.SlugField(
        required=False,
        max_length=100,
        help_text="Only this workspace's automations (its slug); default: every "
        "workspace you may see.",
    )
    automation = forms.SlugField(
        required=False,
        max_length=100,
        help_text="Only this automation (its slug); default: every automation.",
    )

    def clean(self):
        data = super().clean()
        end = data.get("end") or timezone.now()
        start = data.get("start") or end - datetime.timedelta(days=90)
        if start >= end:
            raise forms.ValidationError("start must be before end")
        data["start"], data["end"] = start, end
        return data


def report_from_query(query, *, within=None) -> tuple[PeriodForm, PeriodReport | None]:
    form = PeriodForm(query)
    if not form.is_valid():
        return form, None
    data = form.cleaned_data
    if data["workspace"]:  # another workspace's slug: an empty report, as unknown
        within = (Run.objects.all() if within is None else within).filter(
            automation__workspace__slug=data["workspace"]
        )
    if data["automation"]:  # one you may not see: an empty report, as unknown
        within = (Run.objects.all() if within is None else within).filter(
            automation__slug=data["automation"]
        )
    return form, period_report(
        start=data["start"],
        end=data["end"],
        include_test_cases=data["include_test_cases"],
        within=within,
    )
