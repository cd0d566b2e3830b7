import pytest

from runs.csv import csv_safe, csv_safe_row


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
