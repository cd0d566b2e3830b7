"""The floor of the PostgreSQL throughput bar: a bare psycopg batch cycle.

`floor_rate` puts N items through three steps on the engine's own tables (same
indexes, checks and foreign keys), one batch per transaction, in one process:
claim (a MATERIALIZED `FOR UPDATE SKIP LOCKED` pick, UPDATE … RETURNING), COPY the
run items and the next step's items, mark the batch done, commit. No ledger hashing,
no action call, no Django: what the database allows per batch, the figure the
engine's throughput is measured against (`benchmarks/throughput.py`). Its rows
are deleted and vacuumed afterwards.
"""

import time
import uuid


def floor_rate(automation, items: int, batch: int) -> tuple[float, float]:
    """(item-steps/s, seconds) for `items` items through the 3 steps of
    `automation` (a published one), on a run of its own made here."""
    import psycopg
    from django.db import connection
    from django.utils import timezone

    from runs.engine.bulk import PendingItems
    from runs.models import Run
    from runs.services.starting import next_number
    from runs.states import RunState

    version = automation.latest_published_version()
    steps = list(version.steps.order_by("order"))
    now = timezone.now()
    # a run no engine or housekeeping touches (it is completed), with its items
    run = Run.objects.create(
        number=next_number("run"),
        automation=automation,
        version=version,
        trigger_kind="manual",
        state=RunState.COMPLETED,
        total_items=items,
        created_at=now,
    )
    first = PendingItems(run_id=run.pk, step_id=steps[0].pk, now=now)
    for i in range(items):
        first.add({"subject": f"floor-{i}", "n": i}, f"floor-{i}")
    first.insert()

    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=False) as conn:
        seq = 0
        started = time.perf_counter()
        for index, step in enumerate(steps):
            following = steps[index + 1] if index + 1 < len(steps) else None
            while True:
                token = uuid.uuid4()
                with conn.cursor() as cur:
                    rows = cur.execute(
                        "WITH picked AS MATERIALIZED (SELECT id FROM runs_workitem "
                        "WHERE run_id = %s AND step_id = %s AND state = 'pending' "
                        "AND available_at <= now() ORDER BY id LIMIT %s "
                        "FOR UPDATE SKIP LOCKED) "
                        "UPDATE runs_workitem SET state = 'in_progress', "
                        "lease_token = %s, lease_expires_at = now() + interval '1m', "
                        "attempts = attempts + 1, updated_at = now() "
                        "WHERE id IN (SELECT id FROM picked) "
                        "RETURNING id, subject, payload::text, attempts",
                        [run.pk, step.pk, batch, token],
                    ).fetchall()
                    if not rows:
                        conn.commit()
                        break
                    at = timezone.now()
                    with cur.copy(
                        "COPY runs_runitem (run_id, work_item_id, step_id, action, "
                        "subject, parameters, attempt, idempotency_key, outcome, "
                        "result_ref, failure_type, failure_cause, started_at, "
                        "finished_at, seq, prev_hash, hash) FROM STDIN"
                    ) as copy:
                        for pk, subject, _payload, attempts in rows:
                            seq += 1
                            copy.write_row(
                                (
                                    run.pk,
                                    pk,
                                    step.pk,
                                    step.action,
                                    subject,
                                    "{}",
                                    attempts,
                                    f"{run.pk}:{pk}:{step.action}",
                                    "succeeded",
                                    "",
                                    "",
                                    "",
                                    at,
                                    at,
                                    seq,
                                    "0" * 64,
                                    "0" * 64,
                                )
                            )
                    if following is not None:
                        with cur.copy(
                            "COPY runs_workitem (run_id, step_id, parent_id, state, "
                            "subject, payload, attempts, available_at, failure_type, "
                            "failure_code, failure_message, note, approvers, "
                            "created_at, updated_at) FROM STDIN"
                        ) as copy:
                            for pk, subject, payload, _attempts in rows:
                                copy.write_row(
                                    (
                                        run.pk,
                                        following.pk,
                                        pk,
                                        "pending",
                                        subject,
                                        payload,
                                        0,
                                        at,
                                        "",
                                        "",
                                        "",
                                        "",
                                        "[]",
                                        at,
                                        at,
                                    )
                                )
                    cur.execute(
                        "UPDATE runs_workitem SET state = 'done', lease_token = NULL, "
                        "lease_expires_at = NULL, updated_at = now() "
                        "WHERE id = ANY(%s) AND lease_token = %s",
                        [[row[0] for row in rows], token],
                    )
                conn.commit()
        seconds = time.perf_counter() - started
        # its run items carry no real chain (no hashing here): gone, so that
        # verify_audit on the benchmark's database still passes
        with conn.cursor() as cur:
            for table in ("runs_runitem", "runs_workitem", "runs_run"):
                column = "id" if table == "runs_run" else "run_id"
                cur.execute(f"DELETE FROM {table} WHERE {column} = %s", [run.pk])
        conn.commit()
        # and vacuumed: the engine phase that follows would otherwise share the
        # box with autovacuum's pass over them
        conn.autocommit = True
        conn.execute("VACUUM runs_workitem, runs_runitem")
    return items * len(steps) / seconds, seconds
