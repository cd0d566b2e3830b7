"""Changelist parts that stay fast on large tables.

- `WindowPaginator` never counts the table: it fetches one row more than a page to
  know whether a next page exists.
- `ArchivedFilter` hides archived runs unless asked.
- `live_rows_view` answers the list's poll with its rows while a run is active.
- `date_hierarchy_links` draws the date drill-down from the first and last row of
  the (indexed) date column, instead of Django's SELECT DISTINCT over the table.
"""

import calendar
import datetime

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.templatetags.admin_list import results
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django_htmx.http import HttpResponseStopPolling

from ..states import RUN_ACTIVE, RunState

# the runs whose row may still change on its own (the engine works on them)
LIVE_STATES = frozenset({RunState.PENDING, *RUN_ACTIVE})


class WindowPaginator(Paginator):
    """A paginator whose `count` is "rows up to the end of the requested page, plus
    one if there is more": one LIMIT query of per_page + 1 keys, never a COUNT."""

    page_param = "p"
    # Past this, `(page - 1) * per_page` could overflow the database's integer
    # (`?p=99999999999999999999` was a 500); nobody pages a million pages deep.
    max_page = 1_000_000

    def __init__(self, object_list, per_page, *args, request=None, **kwargs):
        super().__init__(object_list, per_page, *args, **kwargs)
        self.requested = self._requested(request)

    def _requested(self, request) -> int:
        """The page asked for; a number that is no page is a 404 (not a 500)."""
        raw = request.GET.get(self.page_param, "") if request else ""
        if raw == "":
            return 1
        try:
            page = int(raw)
        except ValueError:
            page = 0
        if not 1 <= page <= self.max_page:
            raise Http404(
                f"There is no page {raw[:30]!r}: pages are numbered from 1 "
                f"(at most {self.max_page})."
            )
        return page

    @cached_property
    def count(self):
        offset = (self.requested - 1) * self.per_page
        window = list(
            self.object_list.values_list("pk", flat=True)[
                offset : offset + self.per_page + 1
            ]
        )
        if not window and offset:
            return 0  # past the end: Django answers with page 1 (its usual redirect)
        return offset + len(window)

    @property
    def has_more(self) -> bool:
        return self.count > self.requested * self.per_page


class TestSuiteRunsFilter(admin.SimpleListFilter):
    """Runs the test suite started: shown by default; the period report's
    drill-down leaves them out, as the report does (runs.reports.report_runs)."""

    title = _("test suite runs")
    parameter_name = "test_suite_runs"

    def lookups(self, request, model_admin):
        return [("exclude", _("Leave out")), ("only", _("Only"))]

    def queryset(self, request, queryset):
        from django.db.models import Exists, OuterRef

        from ..regression.models import TestCase

        suite = Q(is_test_case=True) & ~Exists(
            TestCase.objects.filter(source_run=OuterRef("pk"))
        )
        if self.value() == "exclude":
            return queryset.exclude(suite)
        if self.value() == "only":
            return queryset.filter(suite)
        return queryset


class KindFilter(admin.SimpleListFilter):
    """Test case runs (`is_test_case`) or the others. A filter of its own: the
    field's filter would be titled after the column, "By is test case"."""

    title = _("kind")
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("test_case", _("Test case runs")), ("regular", _("Other runs"))]

    def queryset(self, request, queryset):
        if self.value() == "test_case":
            return queryset.filter(is_test_case=True)
        if self.value() == "regular":
            return queryset.filter(is_test_case=False)
        return queryset


class ArchivedFilter(admin.SimpleListFilter):
    title = _("archived")
    parameter_name = "archived"

    def lookups(self, request, model_admin):
        return [("no", _("Not archived")), ("yes", _("Archived")), ("all", _("All"))]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "yes":
            return queryset.filter(archived=True)
        if value == "all":
            return queryset
        return queryset.filter(archived=False)

    def choices(self, changelist):
        current = self.value() or "no"
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string(
                    {self.parameter_name: value}
                )
                if value != "no"
                else changelist.get_query_string(remove=[self.parameter_name]),
                "display": label,
            }


def _local(value):
    return timezone.localtime(value) if timezone.is_aware(value) else value


def date_hierarchy_links(cl):
    """The context Django's date_hierarchy.html expects, built from the table's
    first and last date (two indexed ORDER BY … LIMIT 1 queries) and the calendar,
    not from a DISTINCT over the rows."""
    field_name = cl.date_hierarchy
    year_field, month_field, day_field = (
        f"{field_name}__year",
        f"{field_name}__month",
        f"{field_name}__day",
    )
    year, month, day = (cl.params.get(f) for f in (year_field, month_field, day_field))

    def link(filters):
        return cl.get_query_string(filters, [f"{field_name}__"])

    def one(value):
        return value[-1] if isinstance(value, list) else value

    year, month, day = one(year), one(month), one(day)
    if year and month and day:
        date = datetime.date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({year_field: year, month_field: month}),
                "title": capfirst(formats.date_format(date, "YEAR_MONTH_FORMAT")),
            },
            "choices": [
                {"title": capfirst(formats.date_format(date, "MONTH_DAY_FORMAT"))}
            ],
        }
    if year and month:
        days = calendar.monthrange(int(year), int(month))[1]
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: d}),
                    "title": capfirst(
                        formats.date_format(
                            datetime.date(int(year), int(month), d), "MONTH_DAY_FORMAT"
                        )
                    ),
                }
                for d in range(1, days + 1)
            ],
        }
    # the rows the person may see (their workspaces'), not the whole table's
    rows = cl.root_queryset.order_by()
    first = rows.order_by(field_name).values_list(field_name, flat=True).first()
    last = rows.order_by(f"-{field_name}").values_list(field_name, flat=True).first()
    if first is None:
        return {"show": False}
    first, last = _local(first), _local(last)
    if year:
        year = int(year)
        months = range(
            first.month if first.year == year else 1,
            (last.month if last.year == year else 12) + 1,
        )
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year, month_field: m}),
                    "title": capfirst(
                        formats.date_format(
                            datetime.date(year, m, 1), "YEAR_MONTH_FORMAT"
                        )
                    ),
                }
                for m in months
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [
            {"link": link({year_field: str(y)}), "title": str(y)}
            for y in range(first.year, last.year + 1)
        ],
    }


def live_rows_view(model_admin, request):
    """The rows of the runs list for the same query string (filters, search,
    page), polled by the list while one of its runs is active. The answer is 286
    (htmx stops polling) once none of them is: the last rows still arrive."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    try:
        cl = model_admin.get_changelist_instance(request)
    except IncorrectLookupParameters:
        return HttpResponseBadRequest("These filters are not ones the runs list has.")
    cl.formset = None
    response = TemplateResponse(
        request, "admin/runs/run/live_rows.html", {"results": list(results(cl))}
    )
    if not any_active(cl.result_list):
        response.status_code = HttpResponseStopPolling.status_code
    return response


def any_active(runs) -> bool:
    return any(run.state in LIVE_STATES for run in runs)
