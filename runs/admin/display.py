"""Small HTML pieces shared by the runs admin pages."""

import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _

from ..selectors import STATE_COLOURS
from ..states import RunState, WorkItemState

# The work items' colours: the run states' where the state means the same
# (pending, awaiting input, failed; in progress = running, done = completed).
ITEM_COLOURS = {
    WorkItemState.PENDING: STATE_COLOURS[RunState.PENDING],
    WorkItemState.IN_PROGRESS: STATE_COLOURS[RunState.RUNNING],
    WorkItemState.AWAITING_INPUT: STATE_COLOURS[RunState.AWAITING_INPUT],
    WorkItemState.DONE: STATE_COLOURS[RunState.COMPLETED],
    WorkItemState.FAILED: STATE_COLOURS[RunState.FAILED],
    WorkItemState.RESOLVED: "#0f766e",  # teal
}


def state_badge(state) -> str:
    """A run's or work item's state as a badge; its colours are the style sheet's
    --runs-state-<value> (light or dark theme), not an inline style."""
    try:
        label = RunState(state).label
    except ValueError:
        label = WorkItemState(state).label
    return format_html('<span class="runs-state runs-state-{}">{}</span>', state, label)


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


# a payload longer than this many lines opens collapsed (<details>), its first
# lines shown in the summary
JSON_OPEN_LINES = 8


def json_text(value) -> str:
    """A JSON value as people read it: indented, non-ASCII kept (never Python's
    repr, which shows 'quotes' and None)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def json_block(value, *, open_lines: int = JSON_OPEN_LINES) -> str:
    """A JSON value as escaped, wrapped <pre>; a long one inside a <details> whose
    summary names its size, so the page stays short and nothing is clipped."""
    text = json_text(value)
    lines = text.count("\n") + 1
    pre = format_html('<pre class="runs-json">{}</pre>', text)
    if lines <= open_lines:
        return pre
    head = "\n".join(text.splitlines()[:3])
    return format_html(
        '<details class="runs-json-details"><summary>'
        '<pre class="runs-json runs-json-head">{}</pre>'
        '<span class="runs-json-more">{}</span></summary>{}</details>',
        head + "\n…",
        f"show all {lines} lines",
        pre,
    )


def json_display(field: str, description: str):
    """An admin read-only display of a model's JSON field as `json_block`."""

    @admin.display(description=description)
    def show(self, obj):
        value = getattr(obj, field)
        return "-" if value is None else json_block(value)

    show.__name__ = f"{field}_json"
    return show


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
