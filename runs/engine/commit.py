"""The batch commit: a step run writes a processed batch (item states, run items,
output items, counters) in one transaction, and claims its next batch in it.

Everything that needs no lock is prepared first (`_tally`, `_prepared`); in the
transaction the run is locked first, then its items (the order every writer of a
run takes them in), and each write is fenced by the step run's lease token.

On PostgreSQL the step runs of a run commit side by side and take turns only to
append to the run's chain. The transaction is eight round trips whatever the
batch: the run held shared with its state read (`run_share`: a `run_lock` holder,
a stop or a timeout, waits for it and it for them), the new items' key to their
parent made immediate (`immediate_keys_sql`), the next step's items by COPY (its
keys to their run and step checked by the statement itself, migration 0026), one
statement of data-modifying CTEs (the settle, the step run's count, the next
batch's claim), then the chain lock with the chain head (`batch_head`, the run
row FOR NO KEY UPDATE), the run items by COPY, the run's head and counters, and
the COMMIT. Before, the whole commit ran under the run row's lock and two step
runs of a run took turns for all of it.

On SQLite each is a statement of its own (it has no data-modifying CTEs; its
statements run in process, and the IMMEDIATE transaction holds the one write
lock throughout).
"""

import time
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from ..ledger import PreparedRunItems, append_batch, batch_head, run_share
from ..machines.work_item import (
    LeaseLost,
    claim_ctes,
    settle_check,
    settle_statements,
    work_items_settle,
)
from ..models import RunOutput, StepRun, WorkItem
from ..outbox import work_items_awaiting_outbox
from ..states import STOP_ASKED, STOP_CAUSES, RunState, WorkItemState
from .bulk import PendingItems, insert_rows
from .dispatch import step_runs_ensure

ENSURE_SECONDS = 0.5
# what a batch writes per item besides its state, for items that did not end done
PER_ITEM_FIELDS = [
    "failure_type",
    "failure_code",
    "failure_message",
    "approvers",
    "approval_deadline",
]


_IMMEDIATE_KEYS: list[str] = []


def immediate_keys_sql() -> str:
    """PostgreSQL: SET CONSTRAINTS of a new work item's key to its parent
    IMMEDIATE, so it is checked as the items go in, before the chain lock, as
    its keys to its run and step are (once per statement, migration 0026).
    Their key-share locks (of the run's and the step's rows, and of the parents,
    this step run's own items) conflict with no lock another writer of the run
    takes while this one holds it shared (`run_share`): it updates items without
    changing their keys, and the chain lock (FOR NO KEY UPDATE) leaves key-share
    locks alone. The name is read once per process (`StepRunner` does it
    before its first commit)."""
    if not _IMMEDIATE_KEYS:
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(
                cursor, WorkItem._meta.db_table
            )
        column = WorkItem._meta.get_field("parent").column
        names = sorted(
            connection.ops.quote_name(name)
            for name, c in constraints.items()
            if c["foreign_key"] and c["columns"] == [column]
        )
        _IMMEDIATE_KEYS.extend(names)
    return f"SET CONSTRAINTS {', '.join(_IMMEDIATE_KEYS)} IMMEDIATE"


@dataclass(slots=True)
class Batch:
    """A processed batch as the commit writes it."""

    groups: dict = field(default_factory=dict)  # (state, available_at) -> ids
    per_item: list = field(default_factory=list)  # WorkItems with failure fields
    run_items: list = field(default_factory=list)  # run item rows (own columns)
    new_items: PendingItems | None = None  # outputs, pending at the next step
    # the last step's outputs, the run's: RunOutput rows (plain inserts, by COPY
    # on PostgreSQL; building model instances for bulk_create cost more than
    # the rest of the last step's Python)
    outputs: list = field(default_factory=list)
    increments: dict = field(default_factory=dict)  # run counters


class BatchCommit:
    """The commit half of a Python step run (mixed into StepRunner)."""

    def next_step(self):
        if self._next_step is None:
            self._next_step = (
                self.step.version.steps.filter(order__gt=self.step.order)
                .order_by("order")
                .first()
            ) or False
        return self._next_step or None

    def _commit(self, results: list, claim_next: bool = False) -> list:
        """Write a processed batch; with `claim_next`, claim the next batch in the
        same transaction if the run is still running, and return it."""
        now = timezone.now()
        batch = self._tally(results, now)
        prepared = self._prepared(batch, now)
        expires = now + timezone.timedelta(seconds=self.lease)
        with transaction.atomic():
            if connection.vendor == "postgresql":
                claim = self._write_postgresql(
                    batch, prepared, now, expires, len(results), claim_next
                )
            else:
                claim = self._write_each(
                    batch, prepared, now, expires, len(results), claim_next
                )
        # after the commit: it takes the run's exclusive lock (`run_lock`), which
        # a step run's commit, holding the run shared, must not wait for
        self._ensure_next(batch)
        return self._claimed(claim) if claim else []

    def _claiming(self, state: str, claim_next: bool) -> bool:
        self._stop_checked = time.monotonic()
        self._stop_cause = STOP_CAUSES.get(state, "")
        self._stop_asked = state in STOP_ASKED
        return claim_next and state in (RunState.RUNNING, RunState.AWAITING_INPUT)

    def _write_each(self, batch, prepared, now, expires, processed, claim_next):
        """The commit as one statement per write (SQLite)."""
        # the run row first, then its items: a run ending meanwhile (timeout,
        # stop) waits for this commit, or this commit waits for it
        head = batch_head(self.run)
        self._write(batch, prepared, head, now)
        self._count_processed(processed, expires)
        if not self._claiming(head.state, claim_next):
            return None
        return self._claim(decoded=False)

    def _write_postgresql(self, batch, prepared, now, expires, processed, claim_next):
        """The commit in eight round trips (PostgreSQL, see the module's doc)."""
        state = run_share(self.run)  # the run, then its items
        if batch.new_items:
            with connection.cursor() as cursor:
                cursor.execute(immediate_keys_sql())
            batch.new_items.insert()
        if batch.outputs:
            insert_rows(RunOutput, batch.outputs)
        if batch.per_item:
            WorkItem.objects.bulk_update(
                batch.per_item, PER_ITEM_FIELDS, batch_size=500
            )
        ctes, params, expected = [], [], []
        for i, (sql, values, count) in enumerate(
            settle_statements(self.token, batch.groups, now)
        ):
            ctes.append(f"settled{i} AS ({sql} RETURNING 1)")
            params += values
            expected.append(count)
        sql, values = self._count_statement(processed, expires)
        ctes.append(f"counted AS ({sql} RETURNING 1)")
        params += values
        counts = [f"(SELECT count(*) FROM settled{i})" for i in range(len(expected))]
        counts.append("(SELECT count(*) FROM counted)")
        claiming = self._claiming(state, claim_next)
        if claiming:
            sql, values = claim_ctes(self.run, self.step, **self._claim_args(now))
            ctes.append(sql)
            params += values
            select = (
                f"SELECT {', '.join(counts)}, claimed.* "
                "FROM (SELECT 1) AS one LEFT JOIN claimed ON true"
            )
        else:
            select = f"SELECT {', '.join(counts)}"
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {', '.join(ctes)} {select}", params)
            rows = cursor.fetchall()
        for count, changed in zip(expected, rows[0]):
            settle_check(count, changed)
        if rows[0][len(expected)] != 1:
            raise LeaseLost(f"step run {self.step_run.pk} lost its lease")
        self._tell_approvers(batch)
        # the chain lock, which the run's step runs take in turn
        self._append(batch, prepared, batch_head(self.run))
        if not claiming:
            return None
        self._last_heartbeat = time.monotonic()
        skip = len(counts)
        return [row[skip:] for row in rows if row[skip] is not None], now

    def _tally(self, results: list, now) -> Batch:
        """Group the results by target state and collect the rows to write (no
        database access: this runs before the transaction)."""
        next_step = self.next_step()
        batch = Batch(
            new_items=PendingItems(run_id=self.run.pk, step_id=next_step.pk, now=now)
            if next_step is not None
            else None
        )
        groups, per_item, run_items, new_items = (
            batch.groups,
            batch.per_item,
            batch.run_items,
            batch.new_items,
        )
        outputs = kept = failed = invoked = 0
        run_id = self.run.pk
        for r in results:
            item = r.item
            groups.setdefault((r.state, r.available_at), []).append(item.pk)
            if r.state != WorkItemState.DONE:
                per_item.append(
                    WorkItem(
                        pk=item.pk,
                        failure_type=r.failure_type,
                        failure_code=r.failure_code,
                        failure_message=r.failure_message,
                        approvers=r.approvers,
                        approval_deadline=r.approval_deadline,
                    )
                )
            failed += r.state == WorkItemState.FAILED
            invoked += r.invoked
            outputs += len(r.outputs)
            if new_items is not None:
                for payload in r.outputs:
                    new_items.add(
                        payload,
                        str(payload.get("subject") or item.subject)[:254],
                        item.pk,
                    )
            else:
                # the last step: its outputs are the run's, kept and counted
                kept += len(r.outputs)
                batch.outputs.extend(
                    {
                        "run_id": run_id,
                        "work_item_id": item.pk,
                        "subject": str(payload.get("subject") or item.subject)[:254],
                        "payload": payload,
                        "created_at": now,
                    }
                    for payload in r.outputs
                )
            run_items.append(
                {
                    "work_item_id": item.pk,
                    "subject": item.subject,
                    "attempt": item.attempts,
                    "idempotency_key": r.key,
                    "outcome": r.outcome,
                    "result_ref": r.result_ref,
                    "failure_type": r.failure_type,
                    "failure_cause": r.failure_message,
                    "started_at": r.started_at,
                }
            )
        batch.increments = {
            "total_items": len(new_items) if new_items is not None else 0,
            "output_items": kept,
            "failed_items": failed,
            "actions_invoked": invoked,
            "subjects_matched": outputs if self.spec.selects else 0,
        }
        return batch

    def _prepared(self, batch: Batch, now) -> PreparedRunItems:
        """The batch's run items with their digests and adapted columns."""
        step = self.step
        return PreparedRunItems(
            {
                "run_id": self.run.pk,
                "step_id": step.pk,
                "step_run_id": self.step_run.pk,
                "action": step.action,
                "parameters": step.parameters,
                "finished_at": now,
            },
            batch.run_items,
        )

    def _write(self, batch: Batch, prepared: PreparedRunItems, head, now) -> None:
        """Under the run's lock: settle the items, write their failure fields and
        the outputs, append the run items and move the counters."""
        work_items_settle(self.run, self.token, batch.groups, now)
        if batch.per_item:
            WorkItem.objects.bulk_update(
                batch.per_item, PER_ITEM_FIELDS, batch_size=500
            )
        self._tell_approvers(batch)
        if batch.new_items:
            batch.new_items.insert()
        if batch.outputs:
            insert_rows(RunOutput, batch.outputs)
        self._append(batch, prepared, head)

    def _append(self, batch: Batch, prepared: PreparedRunItems, head) -> None:
        """The batch's run items onto the run's chain after `head`, with the run's
        counters and current step."""
        append_batch(
            self.run,
            prepared,
            head=head,
            increments=batch.increments,
            sets={"current_step": self.step.name},
        )

    def _tell_approvers(self, batch: Batch) -> None:
        """Approvers are told in the transaction that parked their items, once
        the items' approvers and deadline are written."""
        awaiting = [
            pk
            for (state, _), ids in batch.groups.items()
            if state == WorkItemState.AWAITING_INPUT
            for pk in ids
        ]
        if awaiting:
            work_items_awaiting_outbox(self.run, awaiting)

    def _ensure_next(self, batch: Batch) -> None:
        """The next step starts as soon as it has items. While it is busy the check
        is a no-op, so it is made at most every ENSURE_SECONDS; a next-step run that
        finishes in between is covered by run_progress at the end of this step run."""
        if batch.new_items and time.monotonic() >= self._next_ensure:
            step_runs_ensure(self.run, self.next_step())
            self._next_ensure = time.monotonic() + ENSURE_SECONDS

    def _count_statement(self, processed: int, expires) -> tuple[str, list]:
        """Add a committed batch to the step run's count and extend its lease,
        fenced by the lease token: one plain statement (it runs under the write
        lock once per batch; compiling the ORM's UPDATE took longer than running
        it)."""
        quote = connection.ops.quote_name
        lease_token = StepRun._meta.get_field("lease_token")
        sql = (
            f"UPDATE {quote(StepRun._meta.db_table)} SET items_processed = "
            "items_processed + %s, lease_expires_at = %s "
            "WHERE id = %s AND lease_token = %s"
        )
        return (
            sql,
            [
                processed,
                connection.ops.adapt_datetimefield_value(expires),
                self.step_run.pk,
                lease_token.get_db_prep_value(self.token, connection),
            ],
        )

    def _count_processed(self, processed: int, expires) -> None:
        with connection.cursor() as cursor:
            cursor.execute(*self._count_statement(processed, expires))
            if cursor.rowcount != 1:
                raise LeaseLost(f"step run {self.step_run.pk} lost its lease")
