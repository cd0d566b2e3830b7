"""Small inline-SVG charts for the dashboard (no JavaScript, no CDN).

Each chart is a `<figure>`: the SVG (role="img", an aria-label that says what it
shows), a legend in HTML, and the same numbers as a table in a `<details>` for
whoever cannot see the picture. Axes are labelled and carry 4–6 "nice" ticks
(1, 2 or 5 times a power of ten) with gridlines.
"""

import math

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe

from ..selectors import STATE_COLOURS
from ..states import RunState

# series colours of the lead-time chart (one per automation), distinguishable
# from one another in light and dark mode; not run states, so not STATE_COLOURS
SERIES_COLOURS = ["#2f80ed", "#d35400", "#16a085", "#8e44ad", "#c0392b", "#7f8c8d"]
AXIS = 'stroke="currentColor" stroke-opacity="0.6"'
GRID = 'stroke="currentColor" stroke-opacity="0.15"'


def _paint(state, colours=STATE_COLOURS) -> str:
    """A run state's colour as the style sheet's --runs-state-<value> (so the dark
    theme reaches the charts), the palette's value as its fallback; other choices
    (report outcomes) in their own `colours`."""
    if colours is STATE_COLOURS:
        return f"var(--runs-state-{state.value}, {colours[state]})"
    return colours[state]


def _label(state) -> str:
    return str(getattr(state, "label", state))


def nice_ticks(peak: float, *, integer: bool = True) -> list:
    """Ticks from 0 to at least `peak`, 4 to 6 of them (0 included), at a step of
    1, 2, 2.5 or 5 times a power of ten; whole numbers when `integer` (counts)."""
    if peak <= 0:
        return [0, 1, 2, 3, 4] if integer else [0, 0.25, 0.5, 0.75, 1]
    if integer and peak <= 4:
        return [0, 1, 2, 3, 4]
    best = None
    for intervals in (5, 4, 3):
        raw = peak / intervals
        power = 10 ** math.floor(math.log10(raw))
        step = next(f * power for f in (1, 2, 2.5, 5, 10) if f * power >= raw - 1e-12)
        if integer and not float(step).is_integer():
            step = math.ceil(step)
        n = math.ceil(peak / step - 1e-9)
        ticks = [_clean(step * i) for i in range(n + 1)]
        if 4 <= len(ticks) <= 6:
            return ticks
        best = best or ticks
    return best


def _clean(value: float):
    return int(value) if float(value).is_integer() else round(value, 6)


def _frame(width, height, label, box, ticks, tick_text, x_title, y_title) -> list:
    """The SVG's opening, y gridlines with tick labels, and both axis titles."""
    left, top, right, bottom = box
    plot_h = height - top - bottom
    top_value = ticks[-1] or 1
    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="runs-chart" role="img" '
            'viewBox="0 0 {} {}" width="100%" aria-label="{}">',
            width,
            height,
            label,
        )
    ]
    for value in ticks:
        y = top + plot_h - plot_h * value / top_value
        parts.append(
            f'<line class="runs-grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" '
            f'y2="{y:.1f}" {GRID if value else AXIS}/>'
            f'<text x="{left - 6}" y="{y + 3.5:.1f}" font-size="12" '
            f'text-anchor="end" fill="currentColor">{escape(tick_text(value))}</text>'
        )
    parts.append(
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" {AXIS}/>'
        f'<text class="runs-axis-title" x="{left + (width - left - right) / 2:.0f}" '
        f'y="{height - 4}" font-size="12" text-anchor="middle" '
        f'fill="currentColor">{escape(x_title)}</text>'
        f'<text class="runs-axis-title" x="12" y="{top + plot_h / 2:.0f}" '
        f'font-size="12" text-anchor="middle" fill="currentColor" '
        f'transform="rotate(-90 12 {top + plot_h / 2:.0f})">{escape(y_title)}</text>'
    )
    return parts


def _day_labels(days, x_of, y, every) -> list:
    return [
        f'<text x="{x_of(i):.1f}" y="{y}" font-size="12" text-anchor="middle" '
        f'fill="currentColor">{day:%m-%d}</text>'
        for i, day in enumerate(days)
        if i % every == (len(days) - 1) % every  # the last day always labelled
    ]


def _figure(svg: str, legend: str, caption: str, table: str) -> str:
    return format_html(
        '<figure class="runs-figure">{}<figcaption>{}</figcaption>'
        '<details class="runs-chart-data"><summary>{}</summary>{}</details>'
        "</figure>",
        mark_safe(svg),
        mark_safe(legend),
        caption,
        mark_safe(table),
    )


def _table(head: list, rows: list) -> str:
    return format_html(
        "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
        format_html_join("", '<th scope="col">{}</th>', ((h,) for h in head)),
        format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (format_html_join("", "<td>{}</td>", ((c,) for c in row)),)
                for row in rows
            ),
        ),
    )


def runs_by_day_svg(days, by_day, states, *, width=1080, height=280) -> str:
    """Stacked bars: one per day, one segment per run state; the states that occur
    in the legend; a table of runs per day and state in a <details>."""
    box = left, top, right, bottom = 48, 12, 8, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(by_day[d].values()) for d in days]
    ticks = nice_ticks(max(totals + [0]))
    top_value = ticks[-1]
    shown = [s for s in states if any(by_day[d].get(s.value) for d in days)]
    label = (
        f"Runs per day by state, {days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d}: "
        f"{sum(totals)} runs, at most {max(totals + [0])} in a day"
        if days
        else "Runs per day by state: no days"
    )
    parts = _frame(width, height, label, box, ticks, str, "Day", "Runs")
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 2)
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for state in shown:
            n = by_day[day].get(state.value, 0)
            if not n:
                continue
            h = plot_h * n / top_value
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'style="fill:{_paint(state)}"><title>{escape(day.isoformat())}: '
                f"{n} {escape(_label(state))}</title></rect>"
            )
    parts += _day_labels(
        days,
        lambda i: left + (i + 0.5) * slot,
        top + plot_h + 16,
        2 if slot < 40 else 1,
    )
    parts.append("</svg>")
    table = _table(
        ["Day", *(_label(s) for s in shown), "Total"],
        [
            [d.isoformat(), *(by_day[d].get(s.value, 0) for s in shown), t]
            for d, t in zip(days, totals, strict=True)
        ],
    )
    return _figure(
        "".join(str(p) for p in parts),
        legend_html(shown),
        "Runs per day, as a table",
        table,
    )


def duration_text(seconds: float) -> str:
    """A short duration for an axis or a cell: 45s, 12m, 3.5h, 2d."""
    if seconds < 60:
        return f"{seconds:g}s"
    if seconds < 3600:
        return f"{seconds / 60:g}m"
    if seconds < 86400:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 86400:g}d"


def _time_ticks(peak: float) -> list[float]:
    """Nice ticks in the unit that suits `peak` (seconds, minutes, hours, days)."""
    for unit in (86400, 3600, 60, 1):
        if peak >= 2 * unit or unit == 1:
            return [_clean(t * unit) for t in nice_ticks(peak / unit, integer=False)]
    return nice_ticks(peak, integer=False)


def lead_time_svg(days, series, *, width=560, height=280) -> str:
    """Lead time per automation over the days: the median (solid line, dots) and
    the 95th percentile (dashed line, open dots) of the runs that ended each day.
    `series`: [(automation name, {day: (median s, p95 s, runs)})]."""
    box = left, top, right, bottom = 56, 12, 8, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([p95 for _, points in series for _, p95, _ in points.values()] + [0])
    ticks = _time_ticks(peak)
    top_value = ticks[-1] or 1
    label = (
        "Lead time per automation per day, median and 95th percentile: "
        + "; ".join(f"{name} ({len(points)} days)" for name, points in series)
        if series
        else "Lead time per automation: no finished runs in this period"
    )
    parts = _frame(
        width, height, label, box, ticks, duration_text, "Day (run ended)", "Lead time"
    )
    slot = plot_w / max(len(days), 1)
    index = {day: i for i, day in enumerate(days)}

    def x_of(i):
        return left + (i + 0.5) * slot

    def y_of(seconds):
        return top + plot_h - plot_h * seconds / top_value

    legend = []
    for n, (name, points) in enumerate(series):
        colour = SERIES_COLOURS[n % len(SERIES_COLOURS)]
        known = sorted((index[d], v) for d, v in points.items() if d in index)
        for which, dash, fill in (
            (0, "", colour),
            (1, ' stroke-dasharray="5 3"', "none"),
        ):
            coords = [(x_of(i), y_of(v[which])) for i, v in known]
            if len(coords) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
                parts.append(
                    f'<polyline points="{path}" fill="none" stroke="{colour}" '
                    f'stroke-width="2"{dash}/>'
                )
            for (x, y), (i, v) in zip(coords, known, strict=True):
                what = "median" if which == 0 else "95th percentile"
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}" '
                    f'stroke="{colour}" stroke-width="1.5"><title>{escape(name)}, '
                    f"{days[i]:%Y-%m-%d}: {what} {duration_text(round(v[which]))} "
                    f"({v[2]} runs)</title></circle>"
                )
        legend.append(
            format_html(
                '<span class="runs-legend"><span class="runs-swatch" '
                'style="background:{}"></span>{}</span>',
                colour,
                name,
            )
        )
    parts += _day_labels(days, x_of, top + plot_h + 16, 2 if slot < 40 else 1)
    parts.append("</svg>")
    legend.append(
        mark_safe('<span class="runs-legend">── median · ╌╌ 95th percentile</span>')
    )
    rows = [
        [
            name,
            day.isoformat(),
            v[2],
            duration_text(round(v[0])),
            duration_text(round(v[1])),
        ]
        for name, points in series
        for day, v in sorted(points.items())
    ]
    table = _table(["Automation", "Day", "Runs", "Median", "95th percentile"], rows)
    return _figure(
        "".join(str(p) for p in parts),
        "".join(str(x) for x in legend),
        "Lead times, as a table",
        table,
    )


def failure_causes_svg(causes, *, width=560, bar_h=24) -> str:
    """Horizontal bars: the top failure causes, counted by work item (an item
    retried and failed again counts once, by its final cause).
    `causes`: [(step name, cause, n items)]."""
    left, top, right, bottom = 220, 8, 16, 40
    height = top + bottom + bar_h * max(len(causes), 1)
    peak = max([n for *_, n in causes] + [0])
    ticks = nice_ticks(peak)
    top_value = ticks[-1]
    plot_w = width - left - right
    label = (
        "Top failure causes by failed work items: "
        + "; ".join(f"{step}: {cause} ({n})" for step, cause, n in causes)
        if causes
        else "Top failure causes: no failed work items in this period"
    )
    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="runs-chart" role="img" '
            'viewBox="0 0 {} {}" width="100%" aria-label="{}">',
            width,
            height,
            label,
        )
    ]
    base = top + bar_h * max(len(causes), 1)
    for value in ticks:
        x = left + plot_w * value / top_value
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{base}" '
            f"{GRID if value else AXIS}/>"
            f'<text x="{x:.1f}" y="{base + 14}" font-size="12" text-anchor="middle" '
            f'fill="currentColor">{value}</text>'
        )
    for i, (step, cause, n) in enumerate(causes):
        y = top + i * bar_h
        text = f"{step}: {cause}"
        short = text if len(text) <= 34 else text[:33] + "…"
        parts.append(
            f'<text x="{left - 6}" y="{y + bar_h / 2 + 4:.1f}" font-size="12" '
            f'text-anchor="end" fill="currentColor">{escape(short)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{plot_w * n / top_value:.1f}" '
            f'height="{bar_h - 6}" style="fill:{_paint(RunState.FAILED)}">'
            f"<title>{escape(text)}: {n} work items</title></rect>"
        )
    parts.append(
        f'<text class="runs-axis-title" x="{left + plot_w / 2:.0f}" y="{height - 4}" '
        'font-size="12" text-anchor="middle" fill="currentColor">'
        "Failed work items</text></svg>"
    )
    table = _table(
        ["Step", "Cause", "Failed work items"], [list(row) for row in causes]
    )
    return _figure(
        "".join(str(p) for p in parts),
        "",
        "Failure causes, as a table",
        table,
    )


def outcomes_bar_html(counts: dict, total: int, states, colours=STATE_COLOURS) -> str:
    """One horizontal stacked bar of run states (an automation's outcomes), or of
    any other choices given their `colours` (run item outcomes in reports)."""
    segments = []
    for state in states:
        n = counts.get(state.value, 0)
        if not n:
            continue
        segments.append(
            f'<span class="runs-seg" style="width:{100 * n / total:.2f}%;'
            f'background:{_paint(state, colours)}" title="{n} {escape(_label(state))}">'
            "</span>"
        )
    summary = ", ".join(
        f"{counts[s.value]} {_label(s)}" for s in states if counts.get(s.value)
    )
    return mark_safe(
        f'<span class="runs-stack" role="img" aria-label="{escape(summary)}">'
        f"{''.join(segments)}</span>"
    )


def legend_html(states, colours=STATE_COLOURS) -> str:
    return mark_safe(
        "".join(
            f'<span class="runs-legend"><span class="runs-swatch" '
            f'style="background:{_paint(s, colours)}"></span>{escape(_label(s))}</span>'
            for s in states
        )
    )
