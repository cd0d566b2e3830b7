"""Every call of the real robocorp-workitems client sent twice (the first answer
lost, as when a client retries after a dropped connection): nothing duplicates."""

import pytest
import requests
from robocorp.workitems._adapters._robocorp import RobocorpAdapter
from robocorp.workitems._exceptions import EmptyQueue
from robocorp.workitems._types import State

from runs.ledger_verify import verify_chain
from runs.models import RunItem, WorkItem, WorkItemFile
from runs.states import FailureType, RunItemOutcome, WorkItemState

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture
def every_call_twice(monkeypatch):
    calls = []

    def twice(verb):
        def send(url, *args, **kwargs):
            files = kwargs.get("files")
            verb(url, *args, **kwargs)  # this answer is "lost"
            if files:  # a retry sends the file again
                kwargs["files"] = {k: (n, c) for k, (n, c) in files.items()}
            calls.append((verb.__name__, url))
            return verb(url, *args, **kwargs)

        send.__name__ = verb.__name__
        return send

    for name in ("get", "post", "put", "delete"):
        monkeypatch.setattr(requests, name, twice(getattr(requests, name)))
    return calls


def test_repeated_calls_change_nothing_twice(
    robot_server, held_step_run, every_call_twice, monkeypatch
):
    run, step_run, env = held_step_run(
        [{"subject": "ann", "n": 1}, {"subject": "bob", "n": 2}]
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    adapter = RobocorpAdapter()

    first = adapter.reserve_input()
    assert adapter.load_payload(first) == {"subject": "ann", "n": 1}
    adapter.save_payload(first, {"subject": "ann", "n": 1, "checked": True})
    output = adapter.create_output(first, {"subject": "ann", "letter": True})
    adapter.add_file(output, "letter.txt", b"hello ann")
    assert adapter.list_files(output) == ["letter.txt"]
    assert adapter.get_file(output, "letter.txt") == b"hello ann"
    adapter.release_input(first, State.DONE)

    second = adapter.reserve_input()  # reserve-next, sent twice
    assert second != first
    adapter.create_output(second, {"subject": "bob"})
    adapter.release_input(
        second,
        State.FAILED,
        exception={"type": "BUSINESS", "code": "NO_ACCOUNT", "message": "bob has none"},
    )
    with pytest.raises(EmptyQueue):
        adapter.reserve_input()

    release_url = (
        f"{env['RC_API_PROCESS_HOST']}/process-v1/workspaces/default/processes/"
        f"{run.automation.slug}/runs/{run.pk}/robotRuns/{step_run.pk}/release-work-item"
    )
    assert ("post", release_url) in every_call_twice
    outputs = WorkItem.objects.filter(run=run, step__name="step2").order_by("id")
    assert [o.payload for o in outputs] == [
        {"subject": "ann", "letter": True},
        {"subject": "bob"},
    ]
    assert WorkItemFile.objects.filter(work_item=outputs[0]).count() == 1
    items = {w.pk: w for w in WorkItem.objects.filter(run=run, step__name="robot")}
    assert items[int(first)].state == WorkItemState.DONE
    assert items[int(first)].payload["checked"] is True
    assert items[int(second)].state == WorkItemState.FAILED
    assert items[int(second)].failure_type == FailureType.BUSINESS
    assert sorted(
        RunItem.objects.filter(run=run).values_list("work_item_id", "outcome")
    ) == sorted(
        [(int(first), RunItemOutcome.SUCCEEDED), (int(second), RunItemOutcome.FAILED)]
    )
    run.refresh_from_db()
    # 2 outputs made once each, pending at the next step: not yet the run's own
    # outputs (output_items counts the last step's, kept)
    assert (
        run.total_items,
        run.output_items,
        run.failed_items,
        run.actions_invoked,
    ) == (4, 0, 1, 2)
    assert verify_chain(run) is None
