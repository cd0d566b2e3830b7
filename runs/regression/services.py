"""Test cases from runs, and the per-automation suite that re-runs them.

A test case keeps a settled run's inputs and, per work item, the state it ended in
and the outcome of its last run item, keyed by (step name, subject, index): the
index counts the items of that step with that subject in creation order, so two
items with the same subject (or none) stay apart. A suite execution starts one
manual run per case on the chosen version (drafts included), flagged
`is_test_case` so reports leave it out, and compares the settled run with the
case: the run's final state, then every key (changed, missing, unexpected).
Result references (ids of records an action created) are not compared: they
differ on every run by design.
"""

import uuid
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from automations.models import Automation, AutomationVersion, TriggerKind

from ..models import Run, RunItem, WorkItem
from ..services.errors import InvalidRequest, RunsError
from ..services.operator import run_mark_test_case
from ..services.starting import run_start
from ..states import RUN_ACTIVE, RunState
from .models import TestCase, TestCaseResult, TestCaseRun


def _settled(state: str) -> bool:
    return state not in RUN_ACTIVE and state != RunState.PENDING


def run_outcomes(run: Run) -> list[dict]:
    """Per work item of the run: step, subject, index, final state and the outcome
    of its last run item ("" when no action ran on it). Two queries."""
    last: dict = {}
    for work_item_id, outcome, failure_type in (
        RunItem.objects.filter(run=run)
        .order_by("seq")
        .values_list("work_item_id", "outcome", "failure_type")
    ):
        last[work_item_id] = (outcome, failure_type)
    seen: dict = {}
    rows = []
    for pk, step, subject, state in (
        WorkItem.objects.filter(run=run)
        .order_by("id")
        .values_list("pk", "step__name", "subject", "state")
    ):
        index = seen[(step, subject)] = seen.get((step, subject), -1) + 1
        outcome, failure_type = last.get(pk, ("", ""))
        rows.append(
            {
                "step": step,
                "subject": subject,
                "index": index,
                "state": state,
                "outcome": outcome,
                "failure_type": failure_type,
            }
        )
    return rows


def test_case_add(
    run: Run, *, actor=None, name: str = "", reason: str = ""
) -> TestCase:
    """ "Add as test case": flag the run (audited by run_mark_test_case) and keep
    its inputs and per-item outcomes as the expected results. Only a settled run
    has outcomes to expect; a run already a test case is refused."""
    run = Run.objects.select_related("automation").get(pk=run.pk)
    if not _settled(run.state):
        raise InvalidRequest(
            f"run {run.number} is {run.state}: "
            "only a settled run can become a test case",
            code="not_settled",
        )
    with transaction.atomic():
        run_mark_test_case(run, actor=actor, reason=reason)
        return TestCase.objects.create(
            automation=run.automation,
            source_run=run,
            source_run_number=run.number,
            name=name or f"{run.automation.slug} run #{run.number}",
            inputs=run.inputs,
            expected_state=run.state,
            expected=run_outcomes(run),
            created_by=actor if getattr(actor, "pk", None) else None,
            created_by_label=actor.get_username()
            if getattr(actor, "pk", None)
            else "system",
        )


def _key(row: dict) -> tuple:
    return (row["step"], row["subject"], row["index"])


COMPARED = ("state", "outcome", "failure_type")


def differences(case: TestCase, run: Run, actual: list[dict]) -> list[dict]:
    """What differs between the case's expectations and a settled run."""
    found = []
    if run.state != case.expected_state:
        found.append(
            {"what": "run state", "expected": case.expected_state, "actual": run.state}
        )
    expected = {_key(row): row for row in case.expected}
    got = {_key(row): row for row in actual}
    for key, want in expected.items():
        have = got.get(key)
        where = {"step": key[0], "subject": key[1], "index": key[2]}
        if have is None:
            found.append(
                {"what": "missing item", **where, "expected": want, "actual": None}
            )
            continue
        for name in COMPARED:
            if want.get(name, "") != have.get(name, ""):
                found.append(
                    {
                        "what": name,
                        **where,
                        "expected": want.get(name, ""),
                        "actual": have.get(name, ""),
                    }
                )
    for key, have in got.items():
        if key not in expected:
            found.append(
                {
                    "what": "unexpected item",
                    "step": key[0],
                    "subject": key[1],
                    "index": key[2],
                    "expected": None,
                    "actual": have,
                }
            )
    return found


def test_case_run_evaluate(execution: TestCaseRun) -> TestCaseRun:
    """Settle the execution's result once its run has settled (idempotent)."""
    if execution.result != TestCaseResult.RUNNING:
        return execution
    if execution.run_id is None:
        diffs = [{"what": "run deleted before it was evaluated"}]
    else:
        run = Run.objects.get(pk=execution.run_id)
        if not _settled(run.state):
            return execution
        diffs = differences(execution.test_case, run, run_outcomes(run))
    result = TestCaseResult.FAILED if diffs else TestCaseResult.PASSED
    TestCaseRun.objects.filter(pk=execution.pk, result=TestCaseResult.RUNNING).update(
        result=result, differences=diffs, evaluated_at=timezone.now()
    )
    execution.refresh_from_db()
    return execution


@dataclass
class SuiteResult:
    automation: Automation
    version: AutomationVersion
    batch: uuid.UUID
    executions: list = field(default_factory=list)

    @property
    def running(self) -> int:
        return sum(e.result == TestCaseResult.RUNNING for e in self.executions)

    @property
    def passed(self) -> int:
        return sum(e.result == TestCaseResult.PASSED for e in self.executions)

    @property
    def failed(self) -> int:
        return sum(e.result == TestCaseResult.FAILED for e in self.executions)

    def summary(self) -> str:
        return (
            f"{self.automation.slug} v{self.version.number}: "
            f"{len(self.executions)} case(s), {self.passed} passed, "
            f"{self.failed} failed, {self.running} running"
        )


def suite_version(automation: Automation, number: int | None) -> AutomationVersion:
    """The version to test: the one numbered, else the latest (draft included)."""
    versions = automation.versions.all()
    version = (
        versions.filter(number=number).first()
        if number is not None
        else versions.order_by("-number").first()
    )
    if version is None:
        raise InvalidRequest(
            f"{automation.slug} has no version {number}"
            if number
            else f"{automation.slug} has no versions",
            code="unknown_version",
        )
    return version


def test_suite_run(
    automation: Automation,
    *,
    version: AutomationVersion | None = None,
    actor=None,
    inline: bool = False,
) -> SuiteResult:
    """Re-run every test case of the automation against `version` (default: the
    latest, draft included; runs are manual so drafts may run). With `inline`
    the runs execute in this process and are evaluated at once; otherwise the
    worker cluster runs them and `suite_refresh` evaluates them as they settle."""
    from ..engine import run_until_idle

    version = version or suite_version(automation, None)
    if version.automation_id != automation.pk:
        raise InvalidRequest(f"{version} is not a version of {automation.slug}")
    cases = list(TestCase.objects.filter(automation=automation).order_by("id"))
    if not cases:
        raise InvalidRequest(
            f"{automation.slug} has no test cases", code="no_test_cases"
        )
    label = actor.get_username() if getattr(actor, "pk", None) else "test suite"
    batch = uuid.uuid4()
    result = SuiteResult(automation=automation, version=version, batch=batch)
    for case in cases:
        try:
            run = run_start(
                automation=automation,
                inputs=case.inputs,
                trigger_kind=TriggerKind.MANUAL,
                actor=actor,
                actor_label=f"test suite ({label})",
                version=version,
                is_test_case=True,
            )
        except RunsError as exc:
            execution = TestCaseRun.objects.create(
                test_case=case,
                run=None,
                version=version,
                batch=batch,
                result=TestCaseResult.FAILED,
                started_by_label=label,
                differences=[{"what": "run not started", "actual": str(exc)}],
                evaluated_at=timezone.now(),
            )
        else:
            execution = TestCaseRun.objects.create(
                test_case=case,
                run=run,
                version=version,
                batch=batch,
                started_by_label=label,
            )
            if inline:
                run_until_idle(run)
        result.executions.append(test_case_run_evaluate(execution))
    return result


def suite_refresh(batch) -> list[TestCaseRun]:
    """The executions of a batch, each evaluated if its run has settled since."""
    return [
        test_case_run_evaluate(execution)
        for execution in TestCaseRun.objects.filter(batch=batch)
        .select_related("test_case", "run", "version")
        .order_by("test_case_id")
    ]


# "test_…" names of services, not tests: pytest must not collect them where imported
for _service in (test_case_add, test_case_run_evaluate, test_suite_run):
    _service.__test__ = False
