"""Small HTML pieces shared by the runs admin pages."""

from django.utils.html import format_html

from ..selectors import STATE_COLOURS
from ..states import RunState, WorkItemState

ITEM_COLOURS = {
    WorkItemState.PENDING: "#9aa5b1",
    WorkItemState.IN_PROGRESS: "#2f80ed",
    WorkItemState.AWAITING_INPUT: "#9b51e0",
    WorkItemState.DONE: "#27ae60",
    WorkItemState.FAILED: "#c0392b",
    WorkItemState.RESOLVED: "#16a085",
}


def state_badge(state) -> str:
    try:
        label, colour = RunState(state).label, STATE_COLOURS[RunState(state)]
    except ValueError:
        label = WorkItemState(state).label
        colour = ITEM_COLOURS[WorkItemState(state)]
    return format_html(
        '<span class="runs-state runs-state-{}" style="background:{}">{}</span>',
        state,
        colour,
        label,
    )


def progress_bar(done: int, failed: int, total: int, resolved: int = 0) -> str:
    """Items finished well / resolved / failed out of all items."""
    if not total:
        return format_html('<span class="runs-progress-none">{}</span>', "no items")

    def pct(n):
        return f"{100 * n / total:.1f}"

    return format_html(
        '<span class="runs-progress" title="{} done, {} resolved, {} failed of {}">'
        '<span class="runs-progress-done" style="width:{}%"></span>'
        '<span class="runs-progress-resolved" style="width:{}%"></span>'
        '<span class="runs-progress-failed" style="width:{}%"></span></span>'
        ' <span class="runs-progress-text">{}/{}</span>',
        done,
        resolved,
        failed,
        total,
        pct(done),
        pct(resolved),
        pct(failed),
        done + resolved + failed,
        total,
    )


def duration(delta) -> str:
    """A lead time as operators read it: 1h 05m, 3m 07s, 4.2s."""
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{delta.total_seconds():.1f}s"
