"""`seed_demo` seeds a job: the quarterly review runs the KYC review, then the
supplier attestations, as child runs in that order."""

import io

from django.core.management import call_command

from runs.models import Run
from runs.states import RunState


def test_seed_demo_runs_the_quarterly_review_job(db):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    job = Run.objects.get(automation__slug="quarterly-review")
    assert job.state == RunState.COMPLETED
    children = list(Run.objects.filter(parent=job).order_by("number"))
    assert [(c.automation.slug, c.state) for c in children] == [
        ("kyc-review", RunState.COMPLETED),  # its failure resolved by a person
        ("supplier-attestation", RunState.COMPLETED),
    ]
    assert "after resolve and retry: completed" in out.getvalue()
