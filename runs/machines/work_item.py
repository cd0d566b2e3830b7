"""Work item state machine: bulk conditional moves with their ledger rows."""

import datetime
import json

from django.db import NotSupportedError, connection, transaction
from django.utils import timezone

from .. import ledger
from ..models import Run, WorkItem
from ..states import WORK_ITEM_TRANSITIONS, IllegalTransition, WorkItemState

# `available_at` of an output a robot made for the input it holds: pending, but due
# never, so no claim takes it, until the robot releases that input as completed
# (then it is due at once) or the attempt fails (then it is dropped). As in Control
# Room, an output reaches the next step only once its input is released.
HELD_UNTIL = datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC)


class LeaseLost(Exception):
    """The step run no longer holds the lease on items it tried to write."""


def work_items_move(
    run: Run,
    ids: list[int],
    to: str,
    *,
    allowed_from: frozenset[str] | None = None,
    fence_token=None,
    updates: dict | None = None,
    run_items: list = (),
    events: list = (),
    counters: dict | None = None,
) -> int:
    """Move every item in `ids` (all of one run) to `to`, or none of them.

    With `fence_token`, only items still leased under that token move; a mismatch
    raises LeaseLost and rolls the caller's transaction back. The run items and audit
    events given are appended to the run's chain in the same transaction, with
    `counters` (run field updates) in the same UPDATE as the chain head.
    """
    allowed = WORK_ITEM_TRANSITIONS[to]
    if allowed_from is not None:
        allowed = allowed & frozenset(allowed_from)
    fields = {"state": to, "updated_at": timezone.now(), **(updates or {})}
    if to == WorkItemState.IN_PROGRESS:
        if not fields.get("lease_token"):
            raise ValueError("an item in progress needs a lease token")
    else:
        fields.update(lease_token=None, lease_owner=None, lease_expires_at=None)
    ids = list(ids)
    with transaction.atomic():
        ledger.run_lock(run)  # the run row, then its items (see run_lock)
        query = WorkItem.objects.filter(pk__in=ids, run=run, state__in=allowed)
        if fence_token is not None:
            query = query.filter(lease_token=fence_token)
        changed = query.update(**fields) if ids else 0
        if changed != len(ids):
            if fence_token is not None:
                raise LeaseLost(
                    f"{len(ids) - changed} of {len(ids)} items are no longer leased "
                    "by this step run"
                )
            blocked = (
                WorkItem.objects.filter(pk__in=ids)
                .exclude(state__in=allowed)
                .values_list("pk", "state")[:5]
            )
            described = ", ".join(f"{pk} is {state}" for pk, state in blocked)
            missing = len(ids) - WorkItem.objects.filter(pk__in=ids, run=run).count()
            if missing:
                described = ", ".join(
                    filter(None, [described, f"{missing} not in run {run.number}"])
                )
            raise IllegalTransition(
                WorkItem(),
                "",
                to,
                reason=f"work items cannot move to {to}: {described}",
            )
        ledger.append(
            run=run, events=list(events), run_items=list(run_items), counters=counters
        )
    return changed


CLAIMED_COLUMNS = "id, step_id, payload, subject, attempts, approval, lease_owner_id"


def claim_statement(
    run: Run, step, *, limit: int, token, owner_id: int, expires, now
) -> tuple[str, list, str, list]:
    """The claim's two halves as SQL: the pick of due pending ids and the UPDATE of
    those ids (to be completed by the picked ids, as a subquery or a CTE), each with
    its parameters. By vendor, not by a feature flag: the statements are written
    for these two databases (another backend with SKIP LOCKED would still need
    its own)."""
    if connection.vendor not in ("postgresql", "sqlite"):
        raise NotSupportedError(
            "the engine claims work items on PostgreSQL or SQLite, "
            f"not {connection.vendor}"
        )
    table = connection.ops.quote_name(WorkItem._meta.db_table)
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    adapt_dt = connection.ops.adapt_datetimefield_value
    token_value = WorkItem._meta.get_field("lease_token").get_db_prep_value(
        token, connection
    )
    run_value = Run._meta.pk.get_db_prep_value(run.pk, connection)
    pick = (
        f"SELECT id FROM {table} WHERE run_id = %s AND step_id = %s AND state = %s "
        f"AND available_at <= %s ORDER BY id LIMIT %s{lock}"
    )
    pick_params = [run_value, step.pk, WorkItemState.PENDING, adapt_dt(now), limit]
    update = (
        f"UPDATE {table} SET state = %s, lease_token = %s, lease_owner_id = %s, "
        f"lease_expires_at = %s, attempts = attempts + 1, updated_at = %s "
        f"WHERE state = %s AND id IN "
    )
    update_params = [
        WorkItemState.IN_PROGRESS,
        token_value,
        owner_id,
        adapt_dt(expires),
        adapt_dt(now),
        WorkItemState.PENDING,
    ]
    return pick, pick_params, update, update_params


def claim_ctes(run: Run, step, **claim) -> tuple[str, list]:
    """PostgreSQL: the claim as two CTEs, `picked` and `claimed` (RETURNING the
    claimed rows), for a statement to end with (the claim alone, or the batch
    commit's one statement). PostgreSQL may run an `IN (SELECT … LIMIT n FOR UPDATE
    SKIP LOCKED)` subquery more than once per statement, each run skipping the rows
    the last one locked, and so claim more than `limit` items; a MATERIALIZED CTE
    is evaluated exactly once."""
    pick, pick_params, update, update_params = claim_statement(run, step, **claim)
    ctes = (
        f"picked AS MATERIALIZED ({pick}), claimed AS ({update}"
        f"(SELECT id FROM picked) RETURNING {CLAIMED_COLUMNS})"
    )
    return ctes, [*pick_params, *update_params]


def work_items_claim(
    run: Run,
    step,
    *,
    limit: int,
    token,
    owner_id: int,
    expires,
    now,
    decoded: bool = True,
) -> list:
    """Claim up to `limit` due pending items of one step: pending -> in_progress.

    One conditional UPDATE of the picked pending ids, RETURNING the claimed rows,
    written per vendor: on PostgreSQL the ids come from a MATERIALIZED CTE that
    skips rows other step runs hold (FOR UPDATE SKIP LOCKED, `claim_ctes`); on
    SQLite from an `IN (SELECT … LIMIT n)`, the IMMEDIATE transaction already
    excluding others. The claim writes no ledger row: the run item written when the
    attempt ends records it (attempt number, start and end).

    With `decoded=False` the rows come back as the database returned them: pass
    them to `claimed_rows` once the caller's transaction has committed, so that
    the write lock is not held while their JSON is parsed.
    """
    claim = {
        "limit": limit,
        "token": token,
        "owner_id": owner_id,
        "expires": expires,
        "now": now,
    }
    if connection.vendor == "postgresql":
        ctes, params = claim_ctes(run, step, **claim)
        sql = f"WITH {ctes} SELECT {CLAIMED_COLUMNS} FROM claimed"
    else:
        pick, pick_params, update, update_params = claim_statement(run, step, **claim)
        sql = f"{update}({pick}) RETURNING {CLAIMED_COLUMNS}"
        params = [*update_params, *pick_params]
    # in the caller's transaction if there is one (the engine claims its next
    # batch in the transaction that commits the last): no savepoint of its own
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return claimed_rows(rows, now) if decoded else rows


def claimed_rows(rows, now) -> list[dict]:
    """Rows returned by a claim as dicts in id order, JSON parsed."""
    claimed = []
    for pk, step_id, payload, subject, attempts, approval, lease_owner_id in rows:
        if isinstance(payload, str):
            payload = json.loads(payload)
        if isinstance(approval, str):
            approval = json.loads(approval)
        claimed.append(
            {
                "id": pk,
                "step_id": step_id,
                "payload": payload,
                "subject": subject,
                "attempts": attempts,
                "approval": approval,
                "lease_owner_id": lease_owner_id,
                "updated_at": now,
            }
        )
    claimed.sort(key=lambda row: row["id"])
    return claimed


def settle_statements(token, groups: dict[tuple, list[int]], now) -> list:
    """The settle's conditional UPDATEs, one per (state, available_at) group, as
    (sql, params, expected row count); see `work_items_settle`."""
    table = connection.ops.quote_name(WorkItem._meta.db_table)
    adapt_dt = connection.ops.adapt_datetimefield_value
    token_value = WorkItem._meta.get_field("lease_token").get_db_prep_value(
        token, connection
    )
    postgresql = connection.vendor == "postgresql"
    statements = []
    for (state, available_at), ids in groups.items():
        if (
            state not in WORK_ITEM_TRANSITIONS
            or WorkItemState.IN_PROGRESS not in (WORK_ITEM_TRANSITIONS[state])
        ):
            raise IllegalTransition(WorkItem(), WorkItemState.IN_PROGRESS, state)
        sets = [
            "state = %s",
            "updated_at = %s",
            "lease_token = NULL",
            "lease_owner_id = NULL",
            "lease_expires_at = NULL",
        ]
        params = [state, adapt_dt(now)]
        if state == WorkItemState.DONE:
            sets += ["failure_type = ''", "failure_code = ''", "failure_message = ''"]
        if available_at is not None:
            sets.append("available_at = %s")
            params.append(adapt_dt(available_at))
        # PostgreSQL: one array parameter, not a list of them to quote and parse,
        # given as its literal (psycopg's client-side binding dumps a list
        # element by element in Python)
        where = (
            "id = ANY(%s::bigint[])"
            if postgresql
            else f"id IN ({', '.join(['%s'] * len(ids))})"
        )
        # fenced by the token alone: a lease token is set exactly while the item
        # is in progress (the check work_item_lease_iff_in_progress). A `state =
        # 'in_progress'` term would let PostgreSQL's planner AND in the partial
        # lease index, whose dead entries (every item passes through in_progress)
        # it then reads by the hundred thousand before autovacuum catches up.
        sql = f"UPDATE {table} SET {', '.join(sets)} WHERE lease_token = %s AND {where}"
        statements.append(
            (
                sql,
                [*params, token_value, *([array_literal(ids)] if postgresql else ids)],
                len(ids),
            )
        )
    return statements


def array_literal(ids) -> str:
    """PostgreSQL: integer ids as an array literal, for a `%s::bigint[]`."""
    return "{" + ",".join(map(str, ids)) + "}"


def settle_check(expected: int, changed: int) -> None:
    if changed != expected:
        raise LeaseLost(
            f"{expected - changed} of {expected} items are no longer leased by this "
            "step run"
        )


def work_items_settle(run: Run, token, groups: dict[tuple, list[int]], now) -> None:
    """End a step run's attempt on its claimed items: in_progress -> done, failed,
    pending (retry at `available_at`) or awaiting_input, one conditional UPDATE per
    target, fenced by the lease token. `groups` maps (state, available_at) to ids.
    Any item no longer leased under `token` raises LeaseLost: nothing is written."""
    statements = settle_statements(token, groups, now)
    # called inside the step run's commit: no savepoint of its own
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        for sql, params, expected in statements:
            cursor.execute(sql, params)
            settle_check(expected, cursor.rowcount)
