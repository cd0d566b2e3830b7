"""The state palette: one colour per state, distinct within runs and within work
items, the same in Python (STATE_COLOURS, ITEM_COLOURS) and in the style sheet's
--runs-state-<value> (light theme), with a dark variant the admin's dark theme uses
(the system's preference and the theme toggle alike), and badge text readable on
every one of them (WCAG AA: contrast of at least 4.5:1)."""

import re
from pathlib import Path

import pytest

import runs
from runs.admin.display import ITEM_COLOURS, state_badge
from runs.admin.reports import OUTCOME_COLOURS
from runs.selectors import STATE_COLOURS
from runs.states import RunItemOutcome, RunState, WorkItemState

CSS = Path(runs.__file__).parent / "static" / "runs" / "admin.css"
LIGHT = r'html\[data-theme="light"\],\s*:root\s*\{(?P<body>[^}]*)\}'
DARK_SYSTEM = (
    r"@media \(prefers-color-scheme: dark\)\s*\{\s*:root\s*\{(?P<body>[^}]*)\}"
)
DARK_TOGGLE = r'html\[data-theme="dark"\]\s*\{(?P<body>[^}]*)\}'


def _variables(pattern):
    match = re.search(pattern, CSS.read_text())
    assert match, f"no block {pattern} in {CSS}"
    return dict(re.findall(r"--([\w-]+):\s*([^;]+);", match["body"]))


def _luminance(colour):
    colour = colour.lstrip("#")
    if len(colour) == 3:
        colour = "".join(c * 2 for c in colour)
    channels = [int(colour[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (
        c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels
    )
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b):
    high, low = sorted([_luminance(a), _luminance(b)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_is_wcag_arithmetic():
    assert contrast("#fff", "#000") == pytest.approx(21)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


def test_every_state_has_one_colour_and_the_sheet_repeats_the_light_one():
    assert set(STATE_COLOURS) == set(RunState)
    assert set(ITEM_COLOURS) == set(WorkItemState)
    light = _variables(LIGHT)
    for state, colour in [*STATE_COLOURS.items(), *ITEM_COLOURS.items()]:
        assert light[f"runs-state-{state.value}"].lower() == colour.lower(), state


@pytest.mark.parametrize("palette", [STATE_COLOURS, ITEM_COLOURS], ids=["run", "item"])
@pytest.mark.parametrize("block", [LIGHT, DARK_SYSTEM, DARK_TOGGLE])
def test_states_are_distinct_and_their_badge_text_reads(palette, block):
    variables = _variables(block)
    colours = [variables[f"runs-state-{state.value}"].lower() for state in palette]
    assert len(set(colours)) == len(colours), colours
    text = variables["runs-state-text"]
    for state, colour in zip(palette, colours, strict=True):
        assert contrast(colour, text) >= 4.5, (state, colour, text)


def test_the_dark_theme_is_the_same_by_preference_and_by_toggle():
    system, toggle = _variables(DARK_SYSTEM), _variables(DARK_TOGGLE)
    assert system == toggle
    light = _variables(LIGHT)
    for state in [*RunState, *WorkItemState]:
        name = f"runs-state-{state.value}"
        assert system[name] != light[name], name


def test_states_of_the_same_meaning_share_a_colour():
    assert ITEM_COLOURS[WorkItemState.FAILED] == STATE_COLOURS[RunState.FAILED]
    assert ITEM_COLOURS[WorkItemState.DONE] == STATE_COLOURS[RunState.COMPLETED]
    assert (
        ITEM_COLOURS[WorkItemState.AWAITING_INPUT]
        == STATE_COLOURS[RunState.AWAITING_INPUT]
    )
    assert OUTCOME_COLOURS[RunItemOutcome.FAILED] == STATE_COLOURS[RunState.FAILED]
    assert set(OUTCOME_COLOURS) == set(RunItemOutcome)


def test_a_badge_takes_its_colours_from_the_style_sheet():
    badge = state_badge(RunState.TIMED_OUT)
    assert 'class="runs-state runs-state-timed_out"' in badge
    assert "style=" not in badge
    assert ">Timed out<" in badge
    assert "runs-state-done" in state_badge(WorkItemState.DONE)
    rules = CSS.read_text()
    for state in [*RunState, *WorkItemState]:
        name = f"runs-state-{state.value}"
        rule = f".{name} {{ background: var(--{name}); }}"
        assert rule in rules, rule


def test_charts_take_the_state_colours_from_the_style_sheet():
    """The dashboard's bars, stacks and swatches paint with --runs-state-<value>
    (the dark theme reaches them), the light value as fallback; report outcomes,
    not run states, keep their own colours."""
    import datetime

    from runs.admin.charts import legend_html, outcomes_bar_html, runs_by_day_svg

    day = datetime.date(2026, 12, 1)
    svg = runs_by_day_svg([day], {day: {"failed": 2}}, [RunState.FAILED])
    assert f"fill:var(--runs-state-failed, {STATE_COLOURS[RunState.FAILED]})" in svg
    stack = outcomes_bar_html({"completed": 1}, 1, [RunState.COMPLETED])
    assert "background:var(--runs-state-completed," in stack
    assert "var(--runs-state-" in legend_html([RunState.COMPLETED])
    outcomes = legend_html(list(OUTCOME_COLOURS), OUTCOME_COLOURS)
    assert "var(--runs-state-" not in outcomes
