"""CSV cells that spreadsheets would run as formulas are neutralised here, once.

A cell that starts with `= + - @`, a tab or a carriage return is read by Excel,
LibreOffice and Google Sheets as a formula (CSV injection, OWASP). Every CSV the
product writes passes its cells through `csv_safe`: such a cell gets a leading `'`,
which spreadsheets show as text. A plain number (`-12`, `+3.5`) is left alone: it is
data, not a formula.
"""

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
