"""A run's timeline of step runs (Airflow's Gantt view) for the run page.

Server-rendered inline SVG (admin/runs/run/_timeline.html draws it; no script, no
CDN): one bar per step run on a time axis with labelled ticks, coloured by state
from the runs palette, each bar's step, worker and attempt in its <title>, and a
table of the same rows as the text alternative. At most `TIMELINE_LIMIT` step runs,
the newest, in one query, so a run of 10,000 items draws as fast as one of ten.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from ..models import Run, StepRun
from ..selectors import STATE_COLOURS
from ..states import RunState, StepRunState, WorkItemState
from .display import ITEM_COLOURS, duration

TIMELINE_LIMIT = 40

# step-run states in the colours of the run and item states they read as
STEP_RUN_COLOURS = {
    StepRunState.QUEUED: ITEM_COLOURS[WorkItemState.PENDING],
    StepRunState.RUNNING: STATE_COLOURS[RunState.RUNNING],
    StepRunState.FINISHED: STATE_COLOURS[RunState.COMPLETED],
    StepRunState.FAILED: STATE_COLOURS[RunState.FAILED],
    StepRunState.CANCELLED: STATE_COLOURS[RunState.CANCELLED],
}

# geometry, in the SVG's own units (it scales to the page's width)
WIDTH = 1000
LABEL_WIDTH = 190
RIGHT_PAD = 20
AXIS_HEIGHT = 22
ROW_HEIGHT = 18
BAR_HEIGHT = 12
PLOT_WIDTH = WIDTH - LABEL_WIDTH - RIGHT_PAD
# tick spacings a reader counts in (seconds); the first that gives at most 6 ticks
TICK_STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800]
TICK_STEPS += [3600, 7200]
TICK_STEPS += [10800, 21600, 43200, 86400, 172800, 604800]
MAX_TICKS = 6


@dataclass
class Bar:
    step_run: StepRun
    attempt: int
    start: datetime
    end: datetime
    ongoing: bool
    x: float = 0.0
    w: float = 0.0
    y: float = 0.0

    @property
    def colour(self) -> str:
        return STEP_RUN_COLOURS.get(self.step_run.state, "#9aa5b1")

    @property
    def label(self) -> str:
        return f"{self.step_run.step.order}. {self.step_run.step.name} #{self.attempt}"

    @property
    def text_y(self) -> float:
        return self.y + BAR_HEIGHT - 2

    @property
    def took(self) -> str:
        return duration(self.end - self.start)

    @property
    def tooltip(self) -> str:
        sr = self.step_run
        end = "now" if self.ongoing else f"{self.end:%H:%M:%S}"
        return (
            f"{sr.step.name} · {sr.get_state_display()} · "
            f"{self.start:%H:%M:%S}–{end} UTC ({self.took}) · "
            f"worker {sr.worker or '-'} · attempt {self.attempt} · "
            f"{sr.items_processed} item(s)"
        )


@dataclass
class Tick:
    x: float
    label: str


@dataclass
class Timeline:
    bars: list
    ticks: list
    total: int
    height: int
    start: datetime
    end: datetime

    @property
    def more(self) -> int:
        return max(self.total - len(self.bars), 0)

    @property
    def summary(self) -> str:
        states = {}
        for bar in self.bars:
            label = bar.step_run.get_state_display().lower()
            states[label] = states.get(label, 0) + 1
        counts = ", ".join(f"{n} {label}" for label, n in states.items())
        return (
            f"{len(self.bars)} step run(s) from {self.start:%H:%M:%S} to "
            f"{self.end:%H:%M:%S} UTC ({duration(self.end - self.start)}): {counts}"
        )


def _ticks(start: datetime, span: float) -> list[Tick]:
    step = next((s for s in TICK_STEPS if span / s <= MAX_TICKS), TICK_STEPS[-1])
    fmt = "%H:%M:%S" if span < 2 * 86400 else "%m-%d %H:%M"
    t0 = start.timestamp()
    ticks = []
    n = math.ceil(round(t0 / step, 6))
    while n * step <= t0 + span + 1e-9:
        at = round(n * step, 1)
        moment = datetime.fromtimestamp(at, tz=start.tzinfo)
        label = f"{moment:{fmt}}"
        if step < 1:  # tenths of a second
            label += f".{round(moment.microsecond / 100_000) % 10}"
        x = LABEL_WIDTH + PLOT_WIDTH * (at - t0) / span
        ticks.append(Tick(x=round(x, 1), label=label))
        n += 1
    return ticks


def run_timeline(
    run: Run, *, total: int, limit: int | None = None, now=None
) -> Timeline | None:
    """The newest `limit` step runs of `run` laid out on one time axis (one query);
    `total` is how many step runs the run has (for the "N more" note). None when
    no step run has been queued yet."""
    now = now or timezone.now()
    limit = limit or TIMELINE_LIMIT
    rows = list(
        StepRun.objects.filter(run=run)
        .select_related("step")
        .annotate(
            attempt=Window(
                RowNumber(), partition_by=[F("step_id")], order_by=F("id").asc()
            )
        )
        .order_by("-id")[:limit]
    )
    if not rows:
        return None
    rows.reverse()
    bars = []
    for sr in rows:
        start = sr.started_at or sr.queued_at
        ongoing = sr.finished_at is None
        end = max(sr.finished_at or now, start)
        bars.append(Bar(sr, sr.attempt, start, end, ongoing))
    t0 = min(b.start for b in bars)
    t1 = max(b.end for b in bars)
    span = max((t1 - t0).total_seconds(), 0.5)
    for row, bar in enumerate(bars):
        bar.x = round(
            LABEL_WIDTH + PLOT_WIDTH * (bar.start - t0).total_seconds() / span, 1
        )
        # at least 2 units wide: a step run of a millisecond is still seen
        bar.w = round(
            max(PLOT_WIDTH * (bar.end - bar.start).total_seconds() / span, 2.0), 1
        )
        bar.y = AXIS_HEIGHT + row * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2
    return Timeline(
        bars=bars,
        ticks=_ticks(t0, span),
        total=max(total, len(bars)),
        height=AXIS_HEIGHT + len(bars) * ROW_HEIGHT + 4,
        start=t0,
        end=t0 + timedelta(seconds=span),
    )
