"""50 concurrent triggers with one Idempotency-Key create exactly one run."""

import json
import threading

import pytest
from django.db import connection, connections

from runs.api.models import ApiClient, IdempotencyKey
from runs.models import Run
from tests.factories import OPERATOR, make_user

from .conftest import client_for

THREADS = 50


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_triggers_with_one_key_make_one_run(automation):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers, so it cannot race")
    auto = automation("builtin.echo")
    user = make_user("racer", OPERATOR)
    ApiClient.objects.create(user=user, name="racer").automations.add(auto)
    body = json.dumps({"inputs": [{"subject": "one"}]})
    barrier = threading.Barrier(THREADS)
    results = []

    def fire():
        client = client_for(user, token=True)
        try:
            barrier.wait()
            response = client.post(
                f"/api/v1/automations/{auto.slug}/runs/",
                body,
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY="one-key",
            )
            results.append(
                (
                    response.status_code,
                    response.json().get("id"),
                    response.get("Idempotent-Replayed"),
                )
            )
        finally:
            connections.close_all()

    client_for(user, token=True)  # create the token before the race
    threads = [threading.Thread(target=fire) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == THREADS
    assert Run.objects.count() == 1, sorted(results)[:3]
    run_id = str(Run.objects.get().pk)
    codes = [code for code, _, _ in results]
    assert set(codes) <= {202, 409}, codes
    created = [r for r in results if r[0] == 202 and r[2] is None]
    assert len(created) == 1 and created[0][1] == run_id
    assert all(rid == run_id for code, rid, _ in results if code == 202)
    assert IdempotencyKey.objects.get().run_id == Run.objects.get().pk
