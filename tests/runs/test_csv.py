"""The one formula-cell rule every export uses."""

import csv
import datetime
import io

import pytest

from runs.csv import csv_safe, csv_safe_row, neutralise, stream_rows


@pytest.mark.parametrize(
    "cell",
    [
        "=1+1",
        "+SUM(A1)",
        "-2+3",
        "@cmd",
        "\tx",
        "\rx",
        '=HYPERLINK("http://evil")',
        "-",
        "+",
    ],
)
def test_formula_cells_get_a_leading_quote(cell):
    assert csv_safe(cell) == "'" + cell


@pytest.mark.parametrize(
    "cell", ["plain", "a=b", "", " =1", "-12", "+3.5", "1e5", "-1.5E-3"]
)
def test_other_cells_are_unchanged(cell):
    assert csv_safe(cell) == cell


def test_non_strings_are_unchanged():
    assert csv_safe_row([None, 3, -4, 1.5, True]) == [None, 3, -4, 1.5, True]


@pytest.mark.parametrize(
    "value,expected",
    [
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("@cmd", "'@cmd"),
        ("plain", "plain"),
        (None, ""),
        (-5, "-5"),
        (42, "42"),
        (
            datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "2025-01-02T03:04:05+00:00",
        ),
    ],
)
def test_neutralise_gives_the_cell_text(value, expected):
    assert neutralise(value) == expected


def test_stream_rows_parse_back():
    rows = [["=1+1", 'quote " and, comma', "line\nbreak"], [None, "@x", 3]]
    text = "".join(stream_rows(["a", "b", "c"], rows))
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed == [
        ["a", "b", "c"],
        ["'=1+1", 'quote " and, comma', "line\nbreak"],
        ["", "'@x", "3"],
    ]
