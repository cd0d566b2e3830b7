"""Query conditions the models' constraints share."""

from django.db.models import Q


def one_of(field: str, values) -> Q:
    """`field` is one of `values`, as `field = a OR field = b …` rather than
    `field IN (a, b …)`. For the rows the engine writes by the thousand: SQLite
    evaluates an IN list by building a temporary b-tree once per statement
    execution, which an `executemany` insert pays again for every row."""
    condition = Q()
    for value in values:
        condition |= Q(**{field: value})
    return condition
