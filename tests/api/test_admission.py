"""The API side of run admission: `priority` in the trigger body and the run, a
waiting run's `queue_position`."""

import pytest

from runs.engine import run_until_idle
from runs.models import Run

from .test_trigger import post

pytestmark = pytest.mark.django_db


def _limited(automation, limit=1):
    return automation("builtin.echo", max_concurrent_runs=limit)


def test_trigger_takes_a_priority_and_answers_the_queue_position(api, automation):
    auto = _limited(automation)
    first = post(api, auto.slug, {"inputs": [{}]}).json()
    assert (first["state"], first["priority"], first["queue_position"]) == (
        "running",
        0,
        None,
    )
    low = post(api, auto.slug, {}).json()
    high = post(api, auto.slug, {"priority": 9}).json()
    assert (low["state"], low["queue_position"]) == ("pending", 1)
    assert (high["priority"], high["queue_position"]) == (9, 1)
    detail = api.get(f"/api/v1/runs/{low['id']}/").json()
    assert detail["queue_position"] == 2
    listed = {r["id"]: r for r in api.get("/api/v1/runs/").json()["results"]}
    assert [listed[r["id"]]["queue_position"] for r in (first, high, low)] == [
        None,
        1,
        2,
    ]
    assert listed[high["id"]]["priority"] == 9
    run_until_idle(Run.objects.get(pk=first["id"]))
    assert api.get(f"/api/v1/runs/{high['id']}/").json()["state"] == "running"
    assert api.get(f"/api/v1/runs/{low['id']}/").json()["queue_position"] == 1


def test_the_list_counts_positions_once_per_waiting_run_on_the_page(
    api, automation, django_assert_max_num_queries
):
    auto = _limited(automation)
    for _ in range(4):
        post(api, auto.slug, {})
    # the list's own queries (6, as without admission) and one count per waiting run
    with django_assert_max_num_queries(6 + 3):
        response = api.get("/api/v1/runs/")
    assert sorted(r["queue_position"] or 0 for r in response.json()["results"]) == [
        0,
        1,
        2,
        3,
    ]


@pytest.mark.parametrize("bad", [101, -101, "high", True, None, 1.5, [1]])
def test_a_bad_priority_is_a_400_and_starts_nothing(api, automation, bad):
    auto = _limited(automation)
    response = post(api, auto.slug, {"priority": bad})
    assert response.status_code == 400, response.content
    assert "priority" in response.json()["errors"]
    assert not Run.objects.exists()


def test_same_key_other_priority_is_422_and_same_priority_replays(api, automation):
    auto = _limited(automation, 3)
    body = {"inputs": [{"n": 1}], "priority": 5}
    first = post(api, auto.slug, body, key="k-1")
    assert first.status_code == 202
    again = post(api, auto.slug, body, key="k-1")
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    other = post(api, auto.slug, {**body, "priority": 6}, key="k-1")
    assert other.status_code == 422
    assert Run.objects.count() == 1


def test_a_key_without_priority_replays_with_priority_zero(api, automation):
    auto = _limited(automation, 3)
    first = post(api, auto.slug, {"inputs": [{"n": 1}]}, key="k-2")
    again = post(api, auto.slug, {"inputs": [{"n": 1}], "priority": 0}, key="k-2")
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
