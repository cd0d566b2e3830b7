"""The operator actions on runs, shared by the changelist (bulk) and the run page.

Each action names its permission, its confirmation form, what it will do (shown on
the confirmation page) and the service it calls. The services decide what applies;
a refusal (RunsError / IllegalTransition) is reported per run and changes nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass

from ..models import WorkItem
from ..services import (
    InvalidRequest,
    run_archive,
    run_rerun,
    run_resolve,
    run_retry,
    run_stop,
    run_unarchive,
    work_item_decide,
)
from ..states import RUN_ACTIVE, RunState, WorkItemState
from . import forms


@dataclass(frozen=True)
class RunAction:
    name: str
    label: str
    permission: str  # "app_label.codename"
    form_class: type
    explain: str
    apply: Callable  # (run, actor, form) -> message
    offered: Callable = lambda run: True  # only for showing buttons; services decide
    danger: bool = False


def _stop(run, actor, form):
    data = form.cleaned_data
    run = run_stop(
        run,
        actor=actor,
        step_runs=data["step_runs"],
        pending_items=data["pending_items"],
        reason=data.get("reason", ""),
    )
    return (
        f"stop requested ({data['step_runs']}, pending items {data['pending_items']}); "
        f"now {run.state}"
    )


def _retry(run, actor, form):
    n = run_retry(
        run,
        actor=actor,
        work_item_ids=form.selected_items(),
        reason=form.cleaned_data.get("reason", ""),
        reread_subjects=form.cleaned_data.get("reread_subjects", False),
    )
    reread = " (subjects re-read)" if form.cleaned_data.get("reread_subjects") else ""
    return f"{n} failed item(s) sent back to pending{reread}"


def _resolve(run, actor, form):
    n = run_resolve(
        run,
        actor=actor,
        note=form.cleaned_data["note"],
        work_item_ids=form.selected_items(),
    )
    return f"{n} failed item(s) resolved"


def _archive(run, actor, form):
    run_archive(run, actor=actor, reason=form.cleaned_data.get("reason", ""))
    return "archived"


def _unarchive(run, actor, form):
    run_unarchive(run, actor=actor, reason=form.cleaned_data.get("reason", ""))
    return "unarchived"


def _rerun(run, actor, form):
    failed_only = form.cleaned_data.get("failed_only", False)
    new = run_rerun(
        run,
        actor=actor,
        version=form.cleaned_data["version"],
        failed_only=failed_only,
    )
    which = " with the failed inputs only" if failed_only else ""
    return f"re-run as run #{new.number} ({new.version}){which}"


def _decide(run, actor, form):
    ids = form.selected_items() or list(
        WorkItem.objects.filter(run=run, state=WorkItemState.AWAITING_INPUT)
        .order_by("id")
        .values_list("pk", flat=True)
    )
    if not ids:
        raise InvalidRequest(f"run {run.number} has no work items awaiting input")
    data = form.cleaned_data
    for pk in ids:
        work_item_decide(
            run,
            actor=actor,
            work_item_id=pk,
            decision=data["decision"],
            data=data.get("data") or {},
            reason=data.get("reason", ""),
        )
    verb = "approved" if data["decision"] == "approve" else "rejected"
    return f"{len(ids)} item(s) {verb}"


def _test_case(run, actor, form):
    from ..regression.services import test_case_add

    test_case_add(run, actor=actor, reason=form.cleaned_data.get("reason", ""))
    return "added as a test case (inputs and per-item outcomes kept as expected)"


def _stoppable(run):
    return run.state in RUN_ACTIVE or run.state == RunState.PENDING


def _settled(run):
    return run.state not in RUN_ACTIVE and run.state != RunState.PENDING


ACTIONS = {
    a.name: a
    for a in [
        RunAction(
            "stop",
            "Stop",
            "runs.stop_run",
            forms.StopForm,
            "Stops the run. 'Let in-flight step runs complete' starts no new step "
            "run and lets the ones working finish; 'Terminate' makes them stop at "
            'their next item, whose work fails with cause "terminated". Pending '
            "items end failed or done, as chosen. The run ends cancelled (or "
            "unresolved when actions failed).",
            _stop,
            offered=_stoppable,
            danger=True,
        ),
        RunAction(
            "retry",
            "Retry failed items",
            "runs.retry_run",
            forms.RetryForm,
            "Sends failed work items back to pending; the run reopens (running) "
            "and the engine works them again with the same idempotency keys.",
            _retry,
            offered=lambda run: run.failed_items > 0,
        ),
        RunAction(
            "resolve",
            "Resolve failed items",
            "runs.resolve_run",
            forms.ResolveForm,
            "Marks failed work items resolved by you, with your note (they never "
            "show as done). An unresolved run with nothing else open completes.",
            _resolve,
            offered=lambda run: run.failed_items > 0,
        ),
        RunAction(
            "archive",
            "Archive",
            "runs.archive_run",
            forms.ActionForm,
            "Hides finished runs from the default list; the archived filter shows "
            "them again. Nothing else changes.",
            _archive,
            offered=lambda run: _settled(run) and not run.archived,
        ),
        RunAction(
            "unarchive",
            "Unarchive",
            "runs.archive_run",
            forms.ActionForm,
            "Shows archived runs in the default list again.",
            _unarchive,
            offered=lambda run: run.archived,
        ),
        RunAction(
            "rerun",
            "Re-run",
            "runs.rerun_run",
            forms.RerunForm,
            "Starts a new run with the same inputs (re-run of this one), on the "
            "version this run used or on the latest published version.",
            _rerun,
            offered=_settled,
        ),
        RunAction(
            "decide",
            "Approve / reject",
            "runs.approve_run",
            forms.DecideForm,
            "Approves (the item goes on, with the input data) or rejects (the item "
            "fails) the work items awaiting input. The person who started a run may "
            "not decide its items (four eyes).",
            _decide,
            offered=lambda run: (
                run.state in (RunState.AWAITING_INPUT, RunState.RUNNING)
            ),
        ),
        RunAction(
            "test_case",
            "Add as test case",
            "automations.change_automation",
            forms.ActionForm,
            "Flags the run as a test case of its automation and keeps its inputs "
            "and the outcome of every work item as the expected results; the "
            "automation's test suite re-runs it against a version you choose.",
            _test_case,
            offered=lambda run: _settled(run) and not run.is_test_case,
        ),
    ]
}
EXPORT_PERMISSION = "runs.export_run"
