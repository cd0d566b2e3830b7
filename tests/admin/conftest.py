import pytest

from runs.engine import run_until_idle
from runs.engine.step_runs import step_run_execute
from runs.models import StepRun
from runs.services import run_start
from runs.states import StepRunState
from tests.conftest import author, operator, viewer  # noqa: F401  (importable here too)


@pytest.fixture
def login(client):
    def _login(user):
        client.force_login(user)
        return client

    return _login


@pytest.fixture
def unresolved_run(automation):
    """A finished run with two failed items (business errors) and one done."""

    def make(**kwargs):
        auto = automation({"action": "test.business_fail"})
        run = run_start(
            automation=auto,
            inputs=[
                {"bad": True, "subject": "s:1"},
                {"bad": True, "subject": "s:2"},
                {"subject": "s:3"},
            ],
            **kwargs,
        )
        run_until_idle(run)
        run.refresh_from_db()
        assert run.state == "unresolved" and run.failed_items == 2
        return run

    return make


@pytest.fixture
def running_run(automation):
    """A run that is running: step 1 done, step 2 (test.slow) queued, not drained."""

    def make(**kwargs):
        auto = automation(
            "builtin.echo", {"action": "test.slow", "parameters": {"seconds": 5}}
        )
        run = run_start(
            automation=auto, inputs=[{"subject": "a"}, {"subject": "b"}], **kwargs
        )
        first = StepRun.objects.get(run=run, state=StepRunState.QUEUED)
        step_run_execute(first.pk)
        run.refresh_from_db()
        assert run.state == "running"
        assert StepRun.objects.filter(run=run, state=StepRunState.QUEUED).exists()
        return run

    return make


@pytest.fixture
def completed_run(automation):
    def make(**kwargs):
        run = run_start(
            automation=automation("test.count"), inputs=[{"subject": "x"}], **kwargs
        )
        run_until_idle(run)
        run.refresh_from_db()
        assert run.state == "completed"
        return run

    return make
