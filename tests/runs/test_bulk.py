"""The engine's raw inserts store what the ORM would have stored."""

import datetime

from django.utils import timezone

from runs.engine.bulk import PendingItems
from runs.models import WorkItem
from runs.services import run_start
from runs.states import WorkItemState


def test_pending_items_read_back_as_the_orm_would_have_written_them(automation):
    run = run_start(automation=automation("builtin.echo", "builtin.echo"), inputs=[{}])
    first = run.work_items.get()
    second_step = run.version.steps.order_by("order").last()
    now = timezone.now().replace(microsecond=0) + datetime.timedelta(microseconds=7)
    payloads = [
        {"subject": "Zoë ☃", "nested": {"list": [1, 2.5, None, True]}, "quote": '"x"'},
        {},
    ]

    items = PendingItems(run_id=run.pk, step_id=second_step.pk, now=now)
    items.add(payloads[0], "Zoë ☃", first.pk)
    items.add(payloads[1], "")
    assert len(items) == 2
    items.insert()

    made = list(WorkItem.objects.filter(step=second_step).order_by("id"))
    assert [(w.payload, w.subject, w.parent_id) for w in made] == [
        (payloads[0], "Zoë ☃", first.pk),
        ({}, "", None),
    ]
    orm = WorkItem(
        run=run, step=second_step, available_at=now, created_at=now, updated_at=now
    )
    for item in made:
        for field in WorkItem._meta.concrete_fields:
            if field.attname in ("id", "payload", "subject", "parent_id"):
                continue
            assert getattr(item, field.attname) == getattr(orm, field.attname), (
                field.name
            )
        assert item.state == WorkItemState.PENDING and item.available_at == now


AWKWARD = 'tab\there, line\nbreak, back\\slash \\N, "quote", Zoë ☃, \r end'


def test_awkward_text_goes_through_the_bulk_inserts_unchanged(automation):
    """Tabs, newlines, backslashes and a literal \\N survive the engine's bulk
    inserts (COPY on PostgreSQL) in subjects, payloads and run items, and the
    ledger still verifies over them."""
    import io

    from django.core.management import call_command

    from runs.engine import run_until_idle
    from runs.models import RunItem

    payload = {"subject": AWKWARD, "nested": {AWKWARD: [AWKWARD, 1.5, None]}}
    run = run_start(
        automation=automation("builtin.echo", "builtin.echo"), inputs=[payload]
    )
    run_until_idle(run)
    run.refresh_from_db()
    assert run.state == "completed"
    items = list(WorkItem.objects.filter(run=run).order_by("id"))
    assert [(w.subject, w.payload) for w in items] == [(AWKWARD, payload)] * 2
    assert items[1].parent_id == items[0].pk
    assert (
        list(RunItem.objects.filter(run=run).values_list("subject", flat=True))
        == [AWKWARD] * 2
    )
    out = io.StringIO()
    call_command("verify_audit", stdout=out, stderr=io.StringIO())


def test_pending_items_make_no_object_per_item(automation):
    """A run of many inputs holds its items as three columns: an object per item
    (a tuple) is one more the garbage collector walks, and 10,000 of them made
    every third `run_start` pay a full collection."""
    import gc
    import uuid

    payloads = [{"n": i} for i in range(5000)]
    items = PendingItems(run_id=uuid.uuid4(), step_id=1, now=timezone.now())
    gc.collect()
    before = len(gc.get_objects())
    for i, payload in enumerate(payloads):
        items.add(payload, f"item-{i}", i or None)
    assert len(items) == 5000
    assert len(gc.get_objects()) - before < 100
