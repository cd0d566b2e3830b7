"""Small inline-SVG charts for the dashboard (no JavaScript, no CDN)."""

from django.utils.html import escape
from django.utils.safestring import mark_safe

from ..selectors import STATE_COLOURS


def _label(state) -> str:
    return str(getattr(state, "label", state))


def runs_by_day_svg(days, by_day, states, *, width=720, height=220) -> str:
    """Stacked bars: one per day, one segment per run state."""
    pad_left, pad_bottom, pad_top = 36, 28, 10
    plot_h = height - pad_bottom - pad_top
    peak = max([sum(by_day[d].values()) for d in days] + [1])
    slot = (width - pad_left) / max(len(days), 1)
    bar_w = max(slot * 0.7, 2)
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="runs-chart" role="img" '
            f'viewBox="0 0 {width} {height}" width="100%" '
            f'aria-label="Runs by state per day">'
        ),
        f'<text x="2" y="{pad_top + 8}" font-size="10">{peak}</text>',
        f'<text x="2" y="{pad_top + plot_h}" font-size="10">0</text>',
        (
            f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width}" '
            f'y2="{pad_top + plot_h}" stroke="#ccc"/>'
        ),
    ]
    for i, day in enumerate(days):
        x = pad_left + i * slot + (slot - bar_w) / 2
        y = pad_top + plot_h
        for state in states:
            n = by_day[day].get(state.value, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{STATE_COLOURS[state]}"><title>{escape(day.isoformat())}: '
                f"{n} {escape(_label(state))}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - 10}" font-size="9" '
            f'text-anchor="middle">{day:%d/%m}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


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
            f'background:{colours[state]}" title="{n} {escape(_label(state))}">'
            "</span>"
        )
    return mark_safe(f'<span class="runs-stack">{"".join(segments)}</span>')


def legend_html(states, colours=STATE_COLOURS) -> str:
    return mark_safe(
        "".join(
            f'<span class="runs-legend"><span class="runs-swatch" '
            f'style="background:{colours[s]}"></span>{escape(_label(s))}</span>'
            for s in states
        )
    )
