"""`run_automation`: --inline runs the steps here; --wait waits for a worker cluster,
and says at once when none answers instead of waiting out its timeout."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from runs.models import Run, StepRun
from runs.states import StepRunState


def _call(*args):
    out = io.StringIO()
    call_command("run_automation", *args, stdout=out)
    return out.getvalue()


def test_inline_completes_the_run(automation):
    automation("builtin.echo", slug="by-hand")
    out = _call("by-hand", "--input", '[{"a": 1}]', "--inline")
    assert "completed; items 1, outputs 1" in out


def test_wait_without_a_worker_cluster_says_so_and_suggests_inline(automation):
    automation("builtin.echo", slug="no-cluster")
    with pytest.raises(CommandError) as refused:
        # the whole timeout would be 10 minutes; no cluster is running in tests
        _call("no-cluster", "--wait", "--timeout", "600", "--cluster-seconds", "0.5")
    message = str(refused.value)
    assert "no worker cluster answers" in message and "--inline" in message
    run = Run.objects.get()
    assert run.state == "pending"  # started, waiting for a worker: nothing undone
    assert "manage.py qcluster" in message and f"#{run.number}" in message


def test_wait_with_a_live_worker_keeps_waiting(automation):
    """A step run somewhere with a live lease is a worker's heartbeat: the command
    waits for its run (here until its own timeout)."""
    auto = automation("builtin.echo", slug="busy-cluster")
    other = automation("builtin.echo", slug="other")
    call_command("run_automation", "other", stdout=io.StringIO())
    busy = StepRun.objects.get(run__automation=other)
    StepRun.objects.filter(pk=busy.pk).update(
        state=StepRunState.RUNNING,
        lease_expires_at=timezone.now() + timezone.timedelta(minutes=5),
    )
    assert auto.slug == "busy-cluster"
    with pytest.raises(CommandError, match="did not settle within 1.0s"):
        _call("busy-cluster", "--wait", "--timeout", "1", "--cluster-seconds", "0.2")


def test_cluster_seconds_must_be_positive(automation):
    automation("builtin.echo", slug="bounds")
    with pytest.raises(CommandError, match="--cluster-seconds"):
        _call("bounds", "--wait", "--cluster-seconds", "0")
    assert not Run.objects.exists()
