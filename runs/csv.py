"""CSV cells that spreadsheets would run as formulas are neutralised here, once.

A cell that starts with `= + - @`, a tab or a carriage return is read by Excel,
LibreOffice and Google Sheets as a formula (CSV injection, CWE-1236, OWASP). Every
CSV the product writes (API export, admin exports, audit trail) passes its cells
through `csv_safe`: such a cell gets a leading `'`, which spreadsheets show as text;
the csv writer's quoting keeps the file parseable. A plain number (`-12`, `+3.5`)
is left alone: it is data, not a formula.
"""

import csv
import datetime
import re

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def csv_safe(value):
    """Return `value` safe for a CSV cell: strings that start like a formula get
    a leading `'`; anything else is returned unchanged."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_PREFIXES)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def csv_safe_row(values) -> list:
    return [csv_safe(value) for value in values]


_FIRST_CHARS = frozenset("=+-@\t\r")


def neutralise(value) -> str:
    """The cell text for `value`: None is the empty cell, datetimes are ISO 8601,
    and text that would run as a formula is neutralised by `csv_safe`."""
    if value.__class__ is str:  # the common case, kept cheap for big exports
        if value and value[0] in _FIRST_CHARS:
            return csv_safe(value)
        return value
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return csv_safe(str(value))


class Echo:
    """A file-like object whose write returns the line, for streaming csv.writer."""

    def write(self, value):
        return value


def stream_rows(header, rows):
    """Yield CSV lines: the header, then every row with each cell neutralised."""
    writer = csv.writer(Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([neutralise(value) for value in row])
