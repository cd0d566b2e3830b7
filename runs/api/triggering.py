"""What an API trigger needs before it starts a run, read in one statement.

The automation (by slug) with its workspace, its first enabled `api` trigger, its
latest published version and that version's first step: the ORM took five queries
for them, and compiling them cost more than running them (a trigger's time is
Python, not the database). Here they are one SELECT, and each row part becomes a
model instance through the ORM's own converters, as a queryset would build it. The
rules stay where they are: the view checks the grant and the trigger in their order,
and `run_start` validates the version (retired automation, draft, no steps).
"""

import weakref
from dataclasses import dataclass

from django.db import connection, connections

from automations.models import (
    Automation,
    AutomationVersion,
    Step,
    Trigger,
    TriggerKind,
    Workspace,
)

from ..sql import prepared_cursor


@dataclass(slots=True)
class TriggerTarget:
    automation: Automation
    trigger: Trigger | None  # its first enabled api trigger, by id
    version: AutomationVersion | None  # the latest published version
    first_step: Step | None  # that version's first step, by order


PARTS = (
    (Automation, "a"),
    (Trigger, "t"),
    (AutomationVersion, "v"),
    (Step, "s"),
    (Workspace, "w"),
)


def _sql() -> str:
    qn = connection.ops.quote_name

    def table(model):
        return qn(model._meta.db_table)

    columns = ", ".join(
        f"{alias}.{qn(field.column)}"
        for model, alias in PARTS
        for field in model._meta.concrete_fields
    )
    return (
        f"SELECT {columns} FROM {table(Automation)} a "
        f"LEFT JOIN {table(Trigger)} t ON t.id = ("
        f"SELECT t2.id FROM {table(Trigger)} t2 WHERE t2.automation_id = a.id "
        "AND t2.kind = %s AND t2.enabled = %s ORDER BY t2.id LIMIT 1) "
        f"LEFT JOIN {table(AutomationVersion)} v ON v.id = ("
        f"SELECT v2.id FROM {table(AutomationVersion)} v2 "
        "WHERE v2.automation_id = a.id AND v2.published_at IS NOT NULL "
        "ORDER BY v2.number DESC LIMIT 1) "
        f"LEFT JOIN {table(Step)} s ON s.id = ("
        f"SELECT s2.id FROM {table(Step)} s2 WHERE s2.version_id = v.id "
        f"ORDER BY s2.{qn('order')} LIMIT 1) "
        f"JOIN {table(Workspace)} w ON w.id = a.workspace_id "
        "WHERE a.slug = %s"
    )


class _Part:
    """How one model's columns in the row become an instance: the ORM's converters
    for each column (the backend's, then the field's), as a queryset applies them."""

    def __init__(self, model, alias, start: int):
        fields = model._meta.concrete_fields
        self.model = model
        self.names = [field.attname for field in fields]
        self.stop = start + len(fields)
        self.start = start
        self.pk_index = start + fields.index(model._meta.pk)
        self.converters = []
        for index, field in enumerate(fields, start):
            column = field.get_col(alias)
            found = connection.ops.get_db_converters(column) + column.get_db_converters(
                connection
            )
            if found:
                self.converters.append((index - start, column, found))

    def instance(self, row):
        if row[self.pk_index] is None:  # the LEFT JOIN found no row
            return None
        values = list(row[self.start : self.stop])
        for index, column, converters in self.converters:
            value = values[index]
            if value is not None:
                for convert in converters:
                    value = convert(value, column, connection)
                values[index] = value
        return self.model.from_db(connection.alias, self.names, values)


class _Plan:
    def __init__(self):
        self.sql = _sql()
        self.parts, start = [], 0
        for model, alias in PARTS:
            part = _Part(model, alias, start)
            self.parts.append(part)
            start = part.stop


# one plan per database connection (a thread's own): the converters are the
# connection's methods
_plans: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _plan() -> _Plan:
    wrapper = connections[connection.alias]
    plan = _plans.get(wrapper)
    if plan is None:
        plan = _plans[wrapper] = _Plan()
    return plan


def trigger_target(slug: str) -> TriggerTarget | None:
    """The automation `slug` with what a trigger of it needs, or None: no such
    automation."""
    plan = _plan()
    with prepared_cursor() as cursor:
        cursor.execute(plan.sql, [TriggerKind.API, True, slug])
        row = cursor.fetchone()
    if row is None:
        return None
    automation, trigger, version, first_step, workspace = (
        part.instance(row) for part in plan.parts
    )
    automation.workspace = workspace
    # the instances know each other, as select_related would have them
    for child in (trigger, version):
        if child is not None:
            child.automation = automation
    if first_step is not None:
        first_step.version = version
    return TriggerTarget(automation, trigger, version, first_step)
