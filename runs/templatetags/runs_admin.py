"""Template tags of the runs admin: fast date drill-down, the dashboard."""

from django import template

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
