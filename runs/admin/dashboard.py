"""The runs dashboard on the admin index, and its live fragment.

One context for both: the index renders it through the `runs_dashboard` tag, and
`dashboard_fragment_view` serves the same cards alone for htmx to poll while a
visible run moves (`Dashboard.moving`); once nothing moves the fragment comes
without its `hx-trigger`, and the polling stops.
"""

from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from automations.workspaces import VIEW_RUNS, may_somewhere, workspaces_visible_to

from ..selectors import (
    dashboard,
    runs_for,
    work_items_awaiting_decision,
    work_items_for,
)
from .charts import (
    failure_causes_svg,
    lead_time_svg,
    legend_html,
    outcomes_bar_html,
    runs_by_day_svg,
)

TEMPLATE = "admin/runs/dashboard.html"
POLL_SECONDS = 5


def dashboard_context(request) -> dict:
    """The dashboard of what `request.user` may see ({"show": False} when they
    may see no runs), narrowed to `?workspace=` when given."""
    user = getattr(request, "user", None)
    if user is None or not may_somewhere(user, VIEW_RUNS):
        return {"show": False}
    workspace = request.GET.get("workspace", "")[:100]
    within = runs_for(user, workspace=workspace)
    board = dashboard(within=within)
    mine = work_items_awaiting_decision(
        user, work_items_for(user, workspace=workspace)
    ).select_related("run", "step")
    return {
        "show": True,
        "workspace": workspace,
        "workspaces": list(
            workspaces_visible_to(user).values_list("slug", "name")[:50]
        ),
        "board": board,
        "poll_seconds": POLL_SECONDS if board.moving else None,
        "awaiting_mine": list(mine.order_by("id")[:20]),
        "chart": runs_by_day_svg(board.days, board.by_day, board.states),
        "lead_chart": lead_time_svg(board.days, board.lead_times),
        "failure_chart": failure_causes_svg(board.failure_causes),
        "outcomes": [
            (name, outcomes_bar_html(counts, total, board.states), total, counts)
            for name, counts, total in board.by_automation
        ],
        "outcome_legend": legend_html(
            [
                s
                for s in board.states
                if any(counts.get(s.value) for _, counts, _ in board.by_automation)
            ]
        ),
    }


def dashboard_fragment_view(request):
    """The dashboard's cards alone (htmx polls them); 403 for who sees no runs."""
    context = dashboard_context(request)
    if not context["show"]:
        raise PermissionDenied
    return TemplateResponse(request, TEMPLATE, context)
