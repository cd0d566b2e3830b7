"""The formula-cell rule every export uses."""

import csv
import datetime
import io

import pytest

from runs.csv import neutralise, stream_rows


@pytest.mark.parametrize(
    "value,expected",
    [
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-5, "'-5"),
        (42, "42"),
        (
            datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
            "2025-01-02T03:04:05+00:00",
        ),
    ],
)
def test_neutralise(value, expected):
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
