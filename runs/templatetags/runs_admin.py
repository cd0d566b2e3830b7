"""Template tags of the runs admin: fast date drill-down, the dashboard."""

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from automations.workspaces import VIEW_RUNS, may_somewhere, workspaces_visible_to

from ..admin import display
from ..admin.changelist import date_hierarchy_links
from ..models import WorkItem

register = template.Library()


@register.inclusion_tag("admin/date_hierarchy.html")
def runs_date_hierarchy(cl):
    if not cl.date_hierarchy:
        return {"show": False}
    return date_hierarchy_links(cl)


@register.inclusion_tag("admin/runs/dashboard.html", takes_context=True)
def runs_dashboard(context):
    """The dashboard on the admin index, for people who may see runs."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not may_somewhere(user, VIEW_RUNS):
        return {"show": False}
    from ..admin.charts import legend_html, outcomes_bar_html, runs_by_day_svg
    from ..selectors import dashboard, runs_for, work_items_awaiting_decision

    workspace = request.GET.get("workspace", "")[:100]
    within = runs_for(user, workspace=workspace)
    board = dashboard(within=within)
    mine = work_items_awaiting_decision(
        user, WorkItem.objects.filter(run__in=within)
    ).select_related("run", "step")
    return {
        "show": True,
        "workspace": workspace,
        "workspaces": list(
            workspaces_visible_to(user).values_list("slug", "name")[:50]
        ),
        "board": board,
        "awaiting_mine": list(mine.order_by("id")[:20]),
        "chart": runs_by_day_svg(board.days, board.by_day, board.states),
        "legend": legend_html(board.states),
        "outcomes": [
            (name, outcomes_bar_html(counts, total, board.states), total, counts)
            for name, counts, total in board.by_automation
        ],
    }


@register.simple_tag
def runs_page_url(cl, number):
    """The changelist URL of page `number`, keeping the filters."""
    return cl.get_query_string({"p": number})


@register.simple_tag(takes_context=True)
def runs_report_row(context, show_changelinks=False):
    """The period report's row in the runs app of the app list (index, app page,
    nav sidebar), for people who may see runs somewhere."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not may_somewhere(user, VIEW_RUNS):
        return ""
    url = reverse("admin:runs_run_report")
    current = ' aria-current="page"' if request.path == url else ""
    return format_html(
        '<tr class="model-periodreport"><th scope="row" id="runs-periodreport">'
        '<a href="{}"{}>Period report</a></th><td></td>{}</tr>',
        url,
        mark_safe(current),
        format_html(
            '<td><a href="{}" class="viewlink" aria-describedby="runs-periodreport">'
            "View</a></td>",
            url,
        )
        if show_changelinks
        else "",
    )


@register.filter
def json_block(value):
    """A JSON value (payload, parameters, audit before/after) as indented JSON,
    escaped and wrapped, collapsed when long (runs.admin.display.json_block)."""
    return display.json_block(value)
