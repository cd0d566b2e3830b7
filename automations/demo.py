"""Subject sources and predicates of the credit-union demo (see `seed_demo`)."""

import datetime

from django.utils import timezone

from .actions import predicate, subject_source


def _subjects(run, kind: str, *, status="active", due_within_days=None):
    """The run's workspace's subjects of `kind` (subjects of another workspace are
    never selected)."""
    from .models import Subject

    query = Subject.objects.filter(workspace_id=run.automation.workspace_id, kind=kind)
    if status:
        query = query.filter(status=status)
    if due_within_days is not None:
        limit = timezone.localdate() + datetime.timedelta(days=int(due_within_days))
        query = query.filter(due_on__lte=limit)
    return [subject.as_payload() for subject in query.order_by("reference")]


@subject_source("subjects")
def subjects(run, parameters):
    """Subjects of `kind` (and `status`, default active), optionally due within N
    days."""
    return _subjects(
        run,
        parameters.get("kind", "account"),
        status=parameters.get("status", "active"),
        due_within_days=parameters.get("due_within_days"),
    )


@subject_source("demo.accounts_due")
def accounts_due(run, parameters):
    """Accounts (any status) whose KYC review date has passed."""
    return _subjects(run, "account", status=None, due_within_days=0)


@subject_source("demo.suppliers_expiring")
def suppliers_expiring(run, parameters):
    """Suppliers whose attestation expires within 30 days."""
    return _subjects(run, "supplier", due_within_days=parameters.get("days", 30))


@predicate("demo.is_active")
def is_active(payload):
    return payload.get("status", "active") == "active"
