"""Automation definitions as code: validate, import and export (the Contract format).

```json
{"slug": "kyc-review", "name": "Weekly KYC review", "publish": true,
 "run_timeout_seconds": 3600,
 "steps": [{"name": "select", "action": "builtin.select_subjects", ...}],
 "triggers": [{"kind": "schedule", "cron": "0 6 * * 1"}, {"kind": "api"}]}
```
A definition whose steps or timeout differ from the latest version becomes a new
version; the same definition again changes nothing. Every problem is reported with
the path of the field (`steps[2].batch_size: …`) and nothing is written.
"""

import hashlib
import json
import re
import string
from dataclasses import dataclass, field

import regex
from croniter import CroniterBadDateError, croniter
from django.contrib.auth import get_user_model
from django.db import transaction

from runs.evidence.config import config_actor
from runs.secrets.references import parameters_problem

from .actions.registry import UnknownAction, get_action, robot_parameters_problem
from .conditions import InvalidCondition, validate_condition
from .input_schema import schema_problem
from .jobs import RUN_AUTOMATION, job_problem
from .models import (
    DEFAULT_WORKSPACE,
    MAX_CONCURRENT_RUNS_MAX,
    MAX_IN_FLIGHT,
    SLA_SECONDS_MAX,
    Automation,
    AutomationStatus,
    AutomationVersion,
    Step,
    Trigger,
    TriggerKind,
    Workspace,
)
from .services import AutomationStateError, version_publish
from .workspaces import UnknownWorkspace, may, workspace_get

SLUG_RE = re.compile(r"^[-a-zA-Z0-9_]+$")
STEP_DEFAULTS = {
    "parameters": {},
    "batch_size": 100,
    "concurrency": 1,
    "max_attempts": 1,
    "retry_backoff_seconds": 10,
    "item_timeout_seconds": None,
    "max_in_flight": 1,
    "condition": None,
    "requires_approval": False,
    "result_url": "",
}
# step fields added after versions were hashed: left out of the hash at their
# default, so importing an unchanged definition makes no new version
HASH_OMITS_DEFAULT = ("max_in_flight", "result_url")
RESULT_URL_MAX = 500
# a batch is claimed and settled in single statements (SQLite binds at most
# 32,766 values); more parallel step runs than this only queue on the workers
STEP_LIMITS = {
    "batch_size": 5000,
    "concurrency": 64,
    "max_attempts": 100,
    "max_in_flight": MAX_IN_FLIGHT,
}
TOP_LEVEL = {
    "slug",
    "name",
    "description",
    "publish",
    "run_timeout_seconds",
    "steps",
    "triggers",
    "owners",
    "sla_seconds",
    "max_concurrent_runs",
    "workspace",
}


class DefinitionError(ValueError):
    """A definition that cannot be imported; the message names the field."""


@dataclass
class ImportResult:
    automation: Automation
    version: AutomationVersion
    created: bool = False
    new_version: bool = False
    published: bool = False
    messages: list[str] = field(default_factory=list)
    # the version the new one follows (None: the first); a preview diffs the two
    previous: AutomationVersion | None = None
    diff: list = field(default_factory=list)  # diffs.version_diff_rows, previews

    def summary(self) -> str:
        parts = [f"{self.automation.slug}: v{self.version.number}"]
        if self.created:
            parts.append("automation created")
        parts.append("new version" if self.new_version else "unchanged")
        if self.published:
            parts.append("published")
        return ", ".join(parts)


def _positive_int(value, path, *, allow_none=False, minimum=1):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DefinitionError(f"{path}: must be an integer >= {minimum}, got {value!r}")
    return value


def _clean_step(raw, index: int, workspace: str) -> dict:
    path = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path}: must be an object")
    unknown = set(raw) - {"name", "action", *STEP_DEFAULTS}
    if unknown:
        raise DefinitionError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    step = {**STEP_DEFAULTS, **raw}
    if not isinstance(step.get("name"), str) or not step["name"].strip():
        raise DefinitionError(f"{path}.name: required (a non-empty string)")
    if not isinstance(step.get("action"), str):
        raise DefinitionError(f"{path}.action: required (a registered action key)")
    try:
        spec = get_action(step["action"])
    except UnknownAction as exc:
        raise DefinitionError(f"{path}.action: {exc}") from None
    if not isinstance(step["parameters"], dict):
        raise DefinitionError(f"{path}.parameters: must be an object")
    if spec.robot and step["max_in_flight"] != 1:
        raise DefinitionError(
            f"{path}.max_in_flight: a robot step takes its items one at a time"
        )
    if spec.robot:
        problem = robot_parameters_problem(step["parameters"])
        if problem:
            name = step["name"].strip()
            raise DefinitionError(f"{path} ({name}).parameters.{problem}")
    if step["action"] == RUN_AUTOMATION:
        slug = step["parameters"].get("automation")
        if not isinstance(slug, str) or not SLUG_RE.match(slug):
            name = step["name"].strip() if isinstance(step["name"], str) else ""
            raise DefinitionError(
                f"{path} ({name}).parameters.automation: required, the slug of the "
                f"automation to run, got {slug!r}"
            )
        pass_on = step["parameters"].get("pass_on", "outputs")
        if pass_on not in ("outputs", "input"):
            raise DefinitionError(
                f"{path}.parameters.pass_on: 'outputs' (the child run's, the "
                f"default) or 'input' (the item's own payload), got {pass_on!r}"
            )
    # secret references (and a robot step's `secrets`) name existing secrets of
    # the definition's workspace
    problem = parameters_problem(
        step["parameters"], workspace=workspace, robot=spec.robot
    )
    if problem:
        raise DefinitionError(f"{path} ({step['name'].strip()}).{problem}")
    for name, limit in STEP_LIMITS.items():
        _positive_int(step[name], f"{path}.{name}")
        if step[name] > limit:
            raise DefinitionError(f"{path}.{name}: at most {limit}, got {step[name]}")
    _positive_int(
        step["retry_backoff_seconds"], f"{path}.retry_backoff_seconds", minimum=0
    )
    _positive_int(
        step["item_timeout_seconds"], f"{path}.item_timeout_seconds", allow_none=True
    )
    if step["max_in_flight"] > step["batch_size"]:
        raise DefinitionError(
            f"{path}.max_in_flight: at most the step's batch_size "
            f"({step['batch_size']}), got {step['max_in_flight']}"
        )
    if not isinstance(step["requires_approval"], bool):
        raise DefinitionError(f"{path}.requires_approval: must be true or false")
    try:
        validate_condition(step["condition"], f"{path}.condition")
    except InvalidCondition as exc:
        raise DefinitionError(str(exc)) from None
    _clean_approval(step, path)
    step["result_url"] = _clean_result_url(step["result_url"], f"{path}.result_url")
    step["name"] = step["name"].strip()
    return step


def _clean_approval(step: dict, path: str) -> None:
    """The parameters of an approval (`builtin.request_approval`, or any step with
    `requires_approval`): approvers, deadline and the typed `input_schema`."""
    parameters = step["parameters"]
    if step["action"] != "builtin.request_approval" and not step["requires_approval"]:
        if "input_schema" in parameters:
            raise DefinitionError(
                f"{path}.parameters.input_schema: only for builtin.request_approval "
                "or a step that requires approval"
            )
        return
    approvers = parameters.get("approvers", [])
    if not isinstance(approvers, list) or not all(
        isinstance(a, str) and a for a in approvers
    ):
        raise DefinitionError(
            f"{path}.parameters.approvers: must be a list of usernames or group:NAME"
        )
    _positive_int(
        parameters.get("deadline_seconds"),
        f"{path}.parameters.deadline_seconds",
        allow_none=True,
    )
    if "input_schema" in parameters:
        problem = schema_problem(parameters["input_schema"])
        if problem:
            raise DefinitionError(f"{path}.parameters.input_schema: {problem}")


def _clean_result_url(template, path: str) -> str:
    """A deep link template for a step's result reference: an http(s) URL with
    `{result_ref}` as its only placeholder, or ''."""
    if template in (None, ""):
        return ""
    if not isinstance(template, str) or len(template) > RESULT_URL_MAX:
        raise DefinitionError(
            f"{path}: must be a URL of at most {RESULT_URL_MAX} characters"
        )
    if not re.match(r"^https?://[^/\s{}]+", template, re.IGNORECASE):
        raise DefinitionError(
            f"{path}: must start with https:// or http:// and a host, got "
            f"{template[:80]!r}"
        )
    try:
        names = {
            name
            for _, name, _, _ in string.Formatter().parse(template)
            if name is not None
        }
        template.format(result_ref="x")
    except (ValueError, KeyError, IndexError, AttributeError):
        names = None
    if names != {"result_ref"}:
        raise DefinitionError(
            f"{path}: the only placeholder must be {{result_ref}}, got {template!r}"
        )
    return template


def _clean_trigger(raw, index: int) -> dict:
    path = f"triggers[{index}]"
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path}: must be an object")
    kind = raw.get("kind")
    if kind not in TriggerKind.values:
        raise DefinitionError(
            f"{path}.kind: must be one of {', '.join(TriggerKind.values)}, got {kind!r}"
        )
    allowed = {
        TriggerKind.SCHEDULE: {"kind", "cron"},
        TriggerKind.EMAIL: {"kind", "address", "senders", "subject"},
    }.get(kind, {"kind"})
    unknown = set(raw) - allowed
    if unknown:
        raise DefinitionError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    trigger = {"kind": kind}
    if kind == TriggerKind.SCHEDULE:
        trigger["cron"] = _clean_cron(raw.get("cron"), f"{path}.cron")
    if kind == TriggerKind.EMAIL:
        address = raw.get("address")
        if not isinstance(address, str) or "@" not in address:
            raise DefinitionError(f"{path}.address: required (an e-mail address)")
        trigger["address"] = address.lower()
        senders = raw.get("senders", [])
        if not isinstance(senders, list) or not all(
            isinstance(s, str) for s in senders
        ):
            raise DefinitionError(f"{path}.senders: must be a list of addresses")
        for i, sender in enumerate(senders):
            # an entry without @ would never match a sender (issue 13)
            if "@" not in sender:
                raise DefinitionError(
                    f"{path}.senders[{i}]: {sender!r} is not an address; write "
                    f"'@{sender.strip().lstrip('@')}' for the whole domain"
                )
        trigger["senders"] = [s.strip().lower() for s in senders]
        trigger["subject"] = _clean_subject(raw.get("subject", ""), f"{path}.subject")
    return trigger


# A cron of five fields (django-q2 schedules by the minute; a sixth field would be
# croniter's seconds) that fires at least once in this many years.
CRON_HORIZON_YEARS = 10
SUBJECT_PATTERN_MAX = 500


def _clean_cron(cron, path: str) -> str:
    """A cron with a next fire time, or DefinitionError naming it.

    `0 0 30 2 *` is valid syntax that never fires: stored, it made django-q2's
    schedule raise on every sync, after the import had committed.
    """
    if (
        not isinstance(cron, str)
        or len(cron.split()) != 5
        or not croniter.is_valid(cron)
    ):
        raise DefinitionError(
            f"{path}: not a valid cron expression (five fields): {cron!r}"
        )
    try:
        croniter(cron, max_years_between_matches=CRON_HORIZON_YEARS).get_next(float)
    except CroniterBadDateError:
        raise DefinitionError(
            f"{path}: {cron!r} never fires (no date in {CRON_HORIZON_YEARS} years)"
        ) from None
    return cron


def _clean_subject(subject, path: str) -> str:
    """A subject pattern of the `regex` library, which matches it with a timeout
    (runs.mail.matching): at most SUBJECT_PATTERN_MAX characters and valid."""
    if not isinstance(subject, str):
        raise DefinitionError(f"{path}: must be a string (a pattern)")
    if len(subject) > SUBJECT_PATTERN_MAX:
        raise DefinitionError(
            f"{path}: at most {SUBJECT_PATTERN_MAX} characters, got {len(subject)}"
        )
    try:
        regex.compile(subject)
    except regex.error as exc:
        raise DefinitionError(f"{path}: not a valid pattern: {exc}") from None
    return subject


def _sla_seconds(value):
    value = _positive_int(value, "sla_seconds", allow_none=True)
    if value is not None and value > SLA_SECONDS_MAX:
        raise DefinitionError(f"sla_seconds: at most {SLA_SECONDS_MAX}, got {value}")
    return value


def _max_concurrent_runs(value):
    value = _positive_int(value, "max_concurrent_runs", allow_none=True)
    if value is not None and value > MAX_CONCURRENT_RUNS_MAX:
        raise DefinitionError(
            f"max_concurrent_runs: at most {MAX_CONCURRENT_RUNS_MAX}, got {value}"
        )
    return value


def definition_clean(data) -> dict:
    """Validate a raw definition and return it normalised; raise DefinitionError."""
    if not isinstance(data, dict):
        raise DefinitionError("definition: must be an object")
    unknown = set(data) - TOP_LEVEL
    if unknown:
        raise DefinitionError(f"unknown field(s) {', '.join(sorted(unknown))}")
    slug = data.get("slug")
    if not isinstance(slug, str) or not SLUG_RE.match(slug) or len(slug) > 100:
        raise DefinitionError(
            f"slug: required (letters, digits, - and _), got {slug!r}"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DefinitionError("name: required (a non-empty string)")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise DefinitionError("steps: required (a non-empty list)")
    workspace = data.get("workspace", DEFAULT_WORKSPACE)
    if not isinstance(workspace, str) or not SLUG_RE.match(workspace):
        raise DefinitionError(
            f"workspace: a workspace's slug (letters, digits, - and _), "
            f"got {workspace!r}"
        )
    # before the steps: their secret references are checked in it
    cleaned_steps = [_clean_step(raw, i, workspace) for i, raw in enumerate(steps)]
    names = [step["name"] for step in cleaned_steps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError(f"steps: duplicate step name(s) {', '.join(duplicates)}")
    triggers = data.get("triggers", [{"kind": "manual"}])
    if not isinstance(triggers, list):
        raise DefinitionError("triggers: must be a list")
    publish = data.get("publish", False)
    if not isinstance(publish, bool):
        raise DefinitionError("publish: must be true or false")
    owners = data.get("owners", [])
    if not isinstance(owners, list) or not all(isinstance(o, str) for o in owners):
        raise DefinitionError("owners: must be a list of usernames")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise DefinitionError("description: must be a string")
    return {
        "slug": slug,
        "workspace": workspace,
        "name": name.strip(),
        "description": description,
        "publish": publish,
        "run_timeout_seconds": _positive_int(
            data.get("run_timeout_seconds"), "run_timeout_seconds", allow_none=True
        ),
        "steps": cleaned_steps,
        "triggers": [_clean_trigger(raw, i) for i, raw in enumerate(triggers)],
        "owners": owners,
        # the automation's SLA (runs.ops.sla), not part of the version's hash
        "sla_seconds": _sla_seconds(data.get("sla_seconds")),
        # the automation's admission limit (runs.engine.admission), not hashed
        # either: a changed limit is no new version
        "max_concurrent_runs": _max_concurrent_runs(data.get("max_concurrent_runs")),
    }


def definition_hash(definition: dict) -> str:
    steps = [
        {
            k: v
            for k, v in step.items()
            if not (k in HASH_OMITS_DEFAULT and v == STEP_DEFAULTS[k])
        }
        for step in definition["steps"]
    ]
    body = json.dumps(
        {"run_timeout_seconds": definition["run_timeout_seconds"], "steps": steps},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _sync_triggers(automation: Automation, wanted: list[dict]) -> None:
    existing = list(automation.triggers.all())
    keep = []
    for spec in wanted:
        match = next(
            (
                t
                for t in existing
                if t not in keep
                and t.definition()
                == {k: v for k, v in spec.items() if v not in ("", [])}
            ),
            None,
        )
        if match is None:
            match = Trigger(
                automation=automation,
                kind=spec["kind"],
                cron=spec.get("cron", ""),
                address=spec.get("address", ""),
                senders=spec.get("senders", []),
                subject_pattern=spec.get("subject", ""),
            )
            problem = match.address_problem()
            if problem:
                raise DefinitionError(f"triggers: {match.address}: {problem}")
            match.save()
        keep.append(match)
    for trigger in existing:
        if trigger not in keep:
            trigger.delete()


def _workspace_for(definition: dict, actor) -> Workspace:
    """The definition's workspace. An unknown one is an error for everyone (a typo
    must not make a new workspace): `manage.py workspace_add` makes them. A person
    importing needs the Author permissions there (`actor=None`: the server's own
    command line, which may import anywhere)."""
    try:
        workspace = workspace_get(definition["workspace"])
    except UnknownWorkspace as exc:
        raise DefinitionError(f"workspace: {exc}") from None
    if actor is not None and not may(actor, "automations.add_automation", workspace.pk):
        raise DefinitionError(
            f"workspace: {actor.get_username()} may not author automations in "
            f"workspace {workspace.slug}"
        )
    return workspace


def automation_import(data, *, actor=None) -> ImportResult:
    """Create or update an automation from a definition, atomically."""
    definition = definition_clean(data)
    User = get_user_model()
    owners = []
    for username in definition["owners"]:
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise DefinitionError(f"owners: no user named {username!r}")
        owners.append(user)
    problem = job_problem(definition["slug"], definition["steps"])
    if problem:
        raise DefinitionError(problem)
    workspace = _workspace_for(definition, actor)
    digest = definition_hash(definition)
    # the changes below are audit events (version.created, trigger.deleted, …)
    # recorded by runs.evidence.config in this transaction
    with transaction.atomic(), config_actor(actor):
        automation, created = Automation.objects.get_or_create(
            slug=definition["slug"],
            defaults={
                "name": definition["name"],
                "description": definition["description"],
                "workspace": workspace,
            },
        )
        if automation.workspace_id != workspace.pk:
            raise DefinitionError(
                f"workspace: automation {automation.slug} belongs to workspace "
                f"{automation.workspace.slug}; an import does not move it "
                f"(a superuser may, in admin)"
            )
        if automation.status == AutomationStatus.RETIRED and definition["publish"]:
            raise DefinitionError(f"slug: automation {automation.slug} is retired")
        automation.name = definition["name"]
        automation.description = definition["description"]
        automation.sla_seconds = definition["sla_seconds"]
        automation.max_concurrent_runs = definition["max_concurrent_runs"]
        automation.save(
            update_fields=[
                "name",
                "description",
                "sla_seconds",
                "max_concurrent_runs",
                "updated_at",
            ]
        )
        if owners:
            automation.owners.set(owners)
        latest = automation.latest_version()
        result = ImportResult(automation=automation, version=latest, created=created)
        if latest is None or latest.definition_hash != digest:
            version = AutomationVersion.objects.create(
                automation=automation,
                number=(latest.number + 1) if latest else 1,
                run_timeout_seconds=definition["run_timeout_seconds"],
                definition_hash=digest,
                created_by=actor if getattr(actor, "pk", None) else None,
            )
            # one save per step, not bulk_create: each is a `step.created` event
            # (runs.evidence.config), as when added in admin
            for index, step in enumerate(definition["steps"]):
                Step(version=version, order=index + 1, **step).save()
            result.version, result.new_version = version, True
            result.previous = latest
        _sync_triggers(automation, definition["triggers"])
        if definition["publish"] and not result.version.is_published:
            try:
                version_publish(result.version, actor=actor)
            except AutomationStateError as exc:  # four eyes, a bad secret reference
                raise DefinitionError(f"publish: {exc}") from None
            result.published = True
    return result


def automation_export(
    automation: Automation, version: AutomationVersion | None = None
) -> dict:
    """The definition of `version` (default: the latest) in the import format."""
    version = version or automation.latest_version()
    steps = []
    for step in version.steps.order_by("order"):
        data = {"name": step.name, "action": step.action}
        for name, default in STEP_DEFAULTS.items():
            value = getattr(step, name)
            if value != default:
                data[name] = value
        steps.append(data)
    definition = {
        "slug": automation.slug,
        "name": automation.name,
        "publish": version.is_published,
    }
    if automation.workspace.slug != DEFAULT_WORKSPACE:
        definition["workspace"] = automation.workspace.slug
    if automation.description:
        definition["description"] = automation.description
    if version.run_timeout_seconds:
        definition["run_timeout_seconds"] = version.run_timeout_seconds
    if automation.sla_seconds:
        definition["sla_seconds"] = automation.sla_seconds
    if automation.max_concurrent_runs:
        definition["max_concurrent_runs"] = automation.max_concurrent_runs
    definition["steps"] = steps
    definition["triggers"] = [
        t.definition() for t in automation.triggers.order_by("id")
    ]
    owners = [u.get_username() for u in automation.owners.all()]
    if owners:
        definition["owners"] = owners
    return definition
