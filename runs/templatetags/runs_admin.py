"""Template tags of the runs admin: fast date drill-down, the dashboard."""

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from automations.workspaces import VIEW_RUNS, may_somewhere

from ..admin import display
from ..admin.changelist import date_hierarchy_links
from ..admin.dashboard import dashboard_context

register = template.Library()


@register.inclusion_tag("admin/date_hierarchy.html")
def runs_date_hierarchy(cl):
    if not cl.date_hierarchy:
        return {"show": False}
    return date_hierarchy_links(cl)


@register.inclusion_tag("admin/runs/dashboard.html", takes_context=True)
def runs_dashboard(context):
    """The dashboard on the admin index, for people who may see runs."""
    return dashboard_context(context.get("request"))


@register.simple_tag
def admin_log_verb(entry) -> str:
    """What a Recent actions entry did, in words: the run action or change it
    recorded ("Stop: stop requested …", "work item 5 approved"), else Added /
    Changed / Deleted."""
    if entry.is_addition():
        verb = "Added"
    elif entry.is_deletion():
        verb = "Deleted"
    else:
        verb = "Changed"
    message = entry.get_change_message()
    if entry.is_change() and message and message != "No fields changed.":
        return message[:200]
    return verb


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
