"""CSV helpers shared by every export (API, admin).

Spreadsheets run a cell that starts with `= + - @`, a tab or a carriage return as a
formula (CSV injection, CWE-1236). Every exported cell goes through `neutralise`,
which prefixes such a cell with `'` (OWASP's rule); the csv writer's quoting then
keeps the file parseable.
"""

import csv
import datetime

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value) -> str:
    """The cell text for `value`, with a leading `'` if a spreadsheet would read it as
    a formula. None is the empty cell; datetimes are ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


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
