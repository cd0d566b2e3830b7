"""Small HTML pieces shared by the runs admin pages."""

from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _

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


def progress_breakdown(
    done: int, failed: int, total: int, resolved: int = 0, *, width: str = ""
) -> str:
    """Items done / failed / resolved out of all, spelled out beside the bar:
    "4 done · 2 failed / 6" (a run with failures never reads "6/6"). Open items
    are the rest; the bar's label says every count for screen readers."""
    if not total:
        return format_html('<span class="runs-progress-none">{}</span>', "no items")
    open_ = max(total - done - failed - resolved, 0)

    def pct(n):
        return f"{100 * n / total:.1f}"

    label = (
        f"{done} done, {failed} failed, {resolved} resolved, {open_} open "
        f"of {total} items"
    )
    parts = [f"{done} done"]
    if failed:
        parts.append(f"{failed} failed")
    if resolved:
        parts.append(f"{resolved} resolved")
    return format_html(
        '<span class="runs-breakdown" title="{}">'
        '<span class="runs-progress" role="img" aria-label="{}"{}>'
        '<span class="runs-progress-done" style="width:{}%"></span>'
        '<span class="runs-progress-resolved" style="width:{}%"></span>'
        '<span class="runs-progress-failed" style="width:{}%"></span></span>'
        ' <span class="runs-progress-text{}">{} / {}</span></span>',
        label,
        label,
        format_html(' style="width:{}"', width) if width else "",
        pct(done),
        pct(resolved),
        pct(failed),
        " runs-progress-has-failed" if failed else "",
        " · ".join(parts),
        total,
    )


def run_trigger(run) -> str:
    """How a run started and by whom, from its own fields: "Manual · olivia",
    "API · svc-crm", "Schedule", "E-mail", "Re-run of #12 · olivia", "Job run #7".

    Reads `run.rerun_of_number` and `run.parent_number` when the queryset
    annotated them (the runs list: no query per row), else the related runs."""
    parent = _number(run, "parent")
    if parent is not None:
        return format_html(
            '<a href="{}">{} #{}</a>',
            reverse("admin:runs_run_change", args=[run.parent_id]),
            _("Job run"),
            parent,
        )
    kind = run.get_trigger_kind_display()
    person = run_person(run)
    rerun = _number(run, "rerun_of")
    if rerun is not None:
        how = format_html(
            '{} <a href="{}">#{}</a>',
            _("Re-run of"),
            reverse("admin:runs_run_change", args=[run.rerun_of_id]),
            rerun,
        )
        return format_html("{} · {}", how, person) if person else how
    return format_html("{} · {}", kind, person) if person else kind


def run_person(run) -> str:
    """The account that started the run (a person or an API client's user), or
    '' for a schedule, an e-mail or the command line. `run_by_label` holds the
    name as it was when the run started (it stays when the user is deleted)."""
    if not run.run_by_id:
        return ""
    name = getattr(run, "run_by_name", None)
    if name is None:
        name = run.run_by.get_username() if run.run_by else ""
    return name or run.run_by_label


def _number(run, relation: str):
    if not getattr(run, f"{relation}_id"):
        return None
    annotated = getattr(run, f"{relation}_number", None)
    return annotated if annotated is not None else getattr(run, relation).number
