"""The write of a new run in plain statements (runs.services.start_write, issue 19):
the same rows the ORM wrote, the run's chain head in its INSERT, gapless numbers,
and nothing written by a write that fails."""

import datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs import ledger, ledger_verify
from runs.engine import dispatch
from runs.models import AuditEvent, Run, Sequence, StepRun, WorkItem
from runs.services import run_start
from runs.services.start_write import INLINE_ITEMS


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("count", [0, 1, 3, INLINE_ITEMS, INLINE_ITEMS + 1, 130])
def test_a_run_is_written_whole_with_its_head(automation, count):
    auto = automation({"action": "builtin.echo", "batch_size": 40, "concurrency": 2})
    step = auto.latest_published_version().steps.get()
    inputs = [{"subject": f"s{n}", "n": n, "x": 1.5} for n in range(count)]
    run = run_start(automation=auto, inputs=inputs, priority=3)
    stored = Run.objects.get(pk=run.pk)
    assert stored.number == run.number == Sequence.objects.get(name="run").value
    assert (stored.state, stored.priority, stored.inputs) == ("pending", 3, inputs)
    assert stored.total_items == max(count, 1) and stored.current_step == step.name
    items = list(WorkItem.objects.filter(run=run).order_by("id"))
    assert [item.payload for item in items] == (inputs or [{}])
    subjects = [payload.get("subject", "") for payload in inputs] or [""]
    assert [item.subject for item in items] == subjects
    assert {(item.step_id, item.state, item.attempts) for item in items} == {
        (step.pk, "pending", 0)
    }
    # one step run per batch, up to the step's concurrency
    step_runs = StepRun.objects.filter(run=run)
    assert step_runs.count() == min(2, -(-max(count, 1) // 40))
    assert {s.state for s in step_runs} == {"queued"}
    # the run's head is its run.created event, written with it
    event = AuditEvent.objects.get(run=run)
    assert (event.verb, event.seq, event.prev_hash) == ("run.created", 1, "")
    assert (stored.ledger_seq, stored.ledger_hash) == (1, event.hash)
    assert (run.ledger_seq, run.ledger_hash) == (1, event.hash)
    assert event.after["inputs"] == count and event.after["priority"] == 3
    assert ledger_verify.verify_chain(stored) is None
    # the instance is a stored one: a save updates, never inserts again
    assert not run._state.adding
    run.save(update_fields=["error"])


@pytest.mark.django_db(transaction=True)
def test_numbers_stay_gapless_when_a_write_fails(automation):
    """A second run of one trigger at one fire time breaks a unique constraint: the
    write leaves nothing behind, not even a number."""
    auto = automation(
        "builtin.echo", triggers=[{"kind": "schedule", "cron": "* * * * *"}]
    )
    trigger = auto.triggers.get()
    fired = timezone.now().replace(microsecond=0)
    first = run_start(
        automation=auto, trigger_kind="schedule", trigger=trigger, fired_at=fired
    )
    counts = (
        Run.objects.count(),
        WorkItem.objects.count(),
        AuditEvent.objects.filter(run__isnull=False).count(),
        StepRun.objects.count(),
    )
    with pytest.raises(IntegrityError):
        run_start(
            automation=auto,
            trigger_kind="schedule",
            trigger=trigger,
            fired_at=fired,
            inputs=[{"a": 1}, {"a": 2}],
        )
    assert (
        Run.objects.count(),
        WorkItem.objects.count(),
        AuditEvent.objects.filter(run__isnull=False).count(),
        StepRun.objects.count(),
    ) == counts
    assert Sequence.objects.get(name="run").value == first.number
    later = run_start(
        automation=auto,
        trigger_kind="schedule",
        trigger=trigger,
        fired_at=fired + datetime.timedelta(minutes=1),
    )
    assert later.number == first.number + 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("count", [2, INLINE_ITEMS * 10])
def test_postgresql_writes_a_run_in_one_statement(automation, settings, count):
    """A few inputs go in as VALUES; many are made into work items from the
    run's own inputs on the server (no COPY: payloads sent and parsed once)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no data-modifying CTEs: a statement per table")
    auto = automation("builtin.echo")
    with CaptureQueriesContext(connection) as queries:
        run_start(automation=auto, inputs=[{"a": n} for n in range(count)])
    statements = [q["sql"] for q in queries.captured_queries]
    writes = [sql for sql in statements if not sql.startswith("SELECT")]
    if dispatch.enqueue_writes_row():  # the ORM broker's task row goes with it
        assert len(writes) == 4, statements
        assert (writes[0], writes[-1]) == ("BEGIN", "COMMIT"), statements
    else:  # one statement commits alone; the task goes to Redis after it
        assert len(writes) == 1 and writes[0].startswith("WITH n AS"), statements


@pytest.mark.django_db(transaction=True)
def test_many_inputs_keep_their_payloads_subjects_and_order(automation):
    """The items of many inputs are the inputs, in order, with the subjects
    `subject_of` makes (any JSON value, cut to 254 characters), whatever the
    text holds."""
    odd = ["tab\there", "new\nline", "back\\slash", "quote ' \" {}", "ünï ✓", "x" * 300]
    subjects = [*odd, 12, 1.5, True, None, ["a"], {"k": 1}, ""]
    inputs = [
        {"subject": subjects[n % len(subjects)], "n": n, "deep": {"l": [n, None]}}
        for n in range(INLINE_ITEMS * 4)
    ]
    inputs[7] = {"no_subject": True}
    run = run_start(automation=automation("builtin.echo"), inputs=inputs)
    items = list(WorkItem.objects.filter(run=run).order_by("id"))
    assert [item.payload for item in items] == inputs
    assert [item.subject for item in items] == [
        str(p["subject"])[:254] if "subject" in p else "" for p in inputs
    ]
    assert {item.parent_id for item in items} == {None}


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_run_goes_with_it(automation):
    auto = automation("builtin.echo")
    with pytest.raises(RuntimeError), transaction.atomic():
        run_start(automation=auto)
        raise RuntimeError("the caller fails after run_start")
    assert not Run.objects.exists() and not WorkItem.objects.exists()
    assert not StepRun.objects.exists()


@pytest.mark.django_db
def test_only_a_new_run_starts_its_chain_here(automation):
    run = run_start(automation=automation("builtin.echo"))
    event = ledger.audit_event(verb="run.created", run=run)
    with pytest.raises(ValueError):
        ledger.chain_new_run(run, [event])
    fresh = Run(automation=run.automation, version=run.version)
    with pytest.raises(ValueError):  # an event about another run
        ledger.chain_new_run(fresh, [event])


@pytest.mark.django_db(transaction=True)
def test_the_orm_broker_row_is_the_one_django_q2_writes(settings):
    """The plain INSERT of the task row (dispatch._orm_broker_class) against
    django-q2's own ORM broker: same columns, and the cluster takes it."""
    from django_q.brokers.orm import ORM
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    if not settings.Q_CLUSTER.get("orm"):
        pytest.skip("the Redis broker is in use")
    ours = dispatch._orm_broker_class()(list_key="runs-test")
    stock = ORM(list_key="runs-test")
    package = SignedPackage.dumps({"id": "t1", "func": "math.floor", "args": (1.5,)})
    with transaction.atomic():
        mine = ours.enqueue(package)
        theirs = stock.enqueue(package)
    a, b = OrmQ.objects.get(pk=mine), OrmQ.objects.get(pk=theirs)
    assert (a.key, a.payload) == (b.key, b.payload) == ("runs-test", package)
    assert abs(a.lock - b.lock) < datetime.timedelta(seconds=5)
    taken = dict(stock.dequeue())
    assert SignedPackage.loads(taken[mine])["args"] == (1.5,)


AWKWARD = [
    {"subject": 'O\'Brien "quoted" \\ back', "note": "tab\there\nnewline", "n": -1},
    {"subject": "Zoë ☃ 🙂", "nested": {"list": [1, 2.5, None, True, "x"]}, "n": 0},
    {"subject": "", "empty": {}, "none": None, "big": 2**53, "s": "[$secret x]"},
]


@pytest.mark.django_db(transaction=True)
def test_values_of_every_kind_are_stored_as_given(automation):
    """The write passes rows as one JSON document per table on PostgreSQL and as
    parameters on SQLite: strings with quotes, backslashes, tabs, newlines and
    non-ASCII, nested JSON, nulls and large integers read back unchanged."""
    auto = automation("builtin.echo")
    run = run_start(automation=auto, inputs=AWKWARD, actor_label='Zoë "ops" \\')
    stored = Run.objects.get(pk=run.pk)
    assert stored.inputs == AWKWARD and stored.run_by_label == 'Zoë "ops" \\'
    items = WorkItem.objects.filter(run=run).order_by("id")
    assert [item.payload for item in items] == AWKWARD
    assert [item.subject for item in items] == [p["subject"] for p in AWKWARD]
    assert {item.approval for item in items} == {None}  # SQL NULL, not JSON null
    assert WorkItem.objects.filter(run=run, approval__isnull=True).count() == 3
    assert stored.created_at == run.created_at and stored.deadline_at is None
    assert ledger_verify.verify_chain(stored) is None


def _prepared_writes() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall() if row[0].startswith("WITH n AS")]


@pytest.mark.django_db(transaction=True)
def test_postgresql_prepares_the_write_once_it_is_hot(automation, settings):
    """The write (and the trigger's read) bind on the server, so PostgreSQL plans
    them once per connection after DATABASE_PREPARE_THRESHOLD runs (default 5);
    the plan serves any number of inline items, its text being the same."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's prepared statements")
    assert settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"] == 5
    auto = automation("builtin.echo")
    connection.ensure_connection()
    connection.connection.prepare_threshold = 5
    for count in (1, 2, 3, 1, 7):
        assert not _prepared_writes()
        run_start(automation=auto, inputs=[{"n": n} for n in range(count)])
    run_start(automation=auto, inputs=[{"n": n} for n in range(9)])
    assert len(_prepared_writes()) == 1
    assert WorkItem.objects.count() == 1 + 2 + 3 + 1 + 7 + 9


@pytest.mark.django_db(transaction=True)
def test_postgresql_prepares_nothing_with_the_threshold_off(automation):
    """DATABASE_PREPARE_THRESHOLD=off (a pooler that cannot keep prepared
    statements): the same write, never prepared."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's prepared statements")
    auto = automation("builtin.echo")
    connection.ensure_connection()
    connection.connection.prepare_threshold = None
    try:
        for _ in range(8):
            run_start(automation=auto, inputs=[{"n": 1}])
        assert not _prepared_writes() and Run.objects.count() == 8
    finally:
        connection.connection.prepare_threshold = 5
