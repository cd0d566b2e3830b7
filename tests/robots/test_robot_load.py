"""The demo robot under load: 40 applications through a real worker cluster.

Outputs and their files are made once per input item whatever the client's retries
and replays, an upload racing a release fails no item, and the next step sees each
output once (only after the robot released the input that produced it)."""

import json

import pytest
from django.core.management import call_command

from runs.ledger_verify import verify_chain
from runs.models import Run, RunItem, WorkItem, WorkItemFile
from runs.services import run_start
from runs.states import RUN_FINAL, RunState, WorkItemState
from tests.factories import make_automation
from tests.runs.cluster import IdempotentEndpoint, cluster_env, processes, wait_for

from .conftest import EXAMPLE, robocorp_command

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(400),
]
APPLICATIONS = 40


@pytest.mark.parametrize("attempt", range(2))
def test_forty_applications_make_one_output_and_one_letter_each(
    robot_server, tmp_path, attempt, register_robot, settings
):
    with IdempotentEndpoint() as endpoint:
        auto = make_automation(
            {
                "name": "review",
                "action": "builtin.robot",
                "concurrency": 2,
                "max_attempts": 3,
                "retry_backoff_seconds": 0,
                "parameters": register_robot(
                    "loan-review-load",
                    command=robocorp_command(),
                    cwd=str(EXAMPLE),
                    grace_seconds=5,
                ),
            },
            {
                "name": "notify",
                "action": "builtin.http_request",
                "batch_size": 5,
                "concurrency": 2,
                "parameters": {"url": endpoint.url, "method": "POST"},
            },
            slug=f"robot-load-{attempt}",
        )
        env = cluster_env(
            Q_WORKERS="4",
            Q_TIMEOUT="120",
            Q_RETRY="150",
            RUNS_LEASE_SECONDS="60",
            RUNS_STEP_RUN_BUDGET_SECONDS="30",
            RUNS_ROBOT_API_URL=robot_server.url,
            # the cluster's processes read the registration from the environment
            RUNS_ROBOTS=json.dumps(settings.RUNS_ROBOTS),
            MEDIA_ROOT=str(tmp_path / "media"),
        )
        inputs = [
            {
                "subject": f"a{i}",
                "applicant": f"a{i}",
                "amount": 100 + i,
                "income": 1000,
            }
            for i in range(APPLICATIONS)
        ]
        with processes(["qcluster"], env=env):
            run = run_start(automation=auto, inputs=inputs)
            settled = RUN_FINAL | {RunState.UNRESOLVED}
            wait_for(
                lambda: Run.objects.get(pk=run.pk).state in settled,
                timeout=300,
                interval=0.5,
                what="the run to settle",
            )
        run.refresh_from_db()

    failures = list(
        WorkItem.objects.filter(run=run, state=WorkItemState.FAILED).values_list(
            "subject", "failure_message"
        )
    )
    assert not failures, failures
    assert run.state == RunState.COMPLETED
    causes = list(
        RunItem.objects.filter(run=run)
        .exclude(failure_cause="")
        .values_list("failure_cause", flat=True)
    )
    assert not [c for c in causes if "409" in c or c.lstrip().startswith("{")], causes
    inputs_done = WorkItem.objects.filter(run=run, step__name="review")
    outputs = WorkItem.objects.filter(run=run, step__name="notify")
    per_input = {}
    for parent_id in outputs.values_list("parent_id", flat=True):
        per_input[parent_id] = per_input.get(parent_id, 0) + 1
    assert len(per_input) == APPLICATIONS
    assert set(per_input.values()) == {1}, per_input
    assert set(inputs_done.values_list("state", flat=True)) == {WorkItemState.DONE}
    letters = WorkItemFile.objects.filter(work_item__in=outputs)
    assert letters.count() == APPLICATIONS
    assert set(letters.values_list("work_item", flat=True)) == set(
        outputs.values_list("pk", flat=True)
    )
    # one side effect per application, each request made once
    assert len(endpoint.effects) == APPLICATIONS
    assert set(endpoint.requests.values()) == {1}
    # 40 inputs and 40 outputs; the run's outputs are its last step's (kept)
    assert (run.total_items, run.output_items) == (2 * APPLICATIONS, APPLICATIONS)
    assert run.outputs.count() == APPLICATIONS
    assert verify_chain(run) is None
    call_command("verify_audit")
