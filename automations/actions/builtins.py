"""Built-in actions (the keys are part of the contract: see the README)."""

import functools

import httpx
from django.core.mail import EmailMessage

from ..models import MAX_IN_FLIGHT
from .registry import AwaitApproval, BusinessError, Result, action, get_subject_source


@action("builtin.echo")
def echo(ctx):
    """Output the item's payload unchanged."""
    return [ctx.payload]


@action("builtin.require")
def require(ctx):
    """Fail the item as a business error when a required field is missing or empty."""
    fields = ctx.parameters.get("fields", [])
    missing = [name for name in fields if ctx.payload.get(name) in (None, "", [], {})]
    if missing:
        raise BusinessError(
            f"missing required field(s): {', '.join(missing)}", code="missing_fields"
        )
    return [ctx.payload]


def _subject_of(payload: dict) -> str:
    for key in ("subject", "id", "account", "email"):
        if payload.get(key) not in (None, ""):
            return str(payload[key])
    return ""


def source_parameters(parameters: dict, payload: dict) -> dict:
    """What a subject source is given: the step's parameters, plus, for the names
    the step lists in `input_parameters` and does not set itself, the item's values.

    Inputs never override step parameters (security review, finding 10: an input
    `{"days": 100000}` widened a selection the step fixed at 30 days).
    """
    allowed = parameters.get("input_parameters", [])
    if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
        raise BusinessError(
            "parameter 'input_parameters' must be a list of names",
            code="bad_parameters",
        )
    supplied = {
        name: payload[name]
        for name in allowed
        if name in payload and name not in parameters
    }
    return {**supplied, **parameters}


@action("builtin.select_subjects", selects=True)
def select_subjects(ctx):
    """One output item per subject: from a registered source, or the item itself."""
    source = ctx.parameters.get("source")
    if not source:
        return [dict(ctx.payload, subject=_subject_of(ctx.payload))]
    parameters = source_parameters(ctx.parameters, ctx.payload)
    try:
        found = get_subject_source(source)(ctx.run, parameters)
    except LookupError as exc:
        raise BusinessError(str(exc), code="unknown_source") from exc
    return [dict(row, subject=_subject_of(row)) for row in found]


@functools.cache
def http_client() -> httpx.Client:
    """One pooled client per process: building a client (and its TLS context) per
    request costs ~100 ms, far more than a request to a nearby service. It keeps
    as many connections open as a step may have calls in flight (httpx's default
    20 would reconnect for every call beyond them)."""
    return httpx.Client(
        limits=httpx.Limits(
            max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT
        )
    )


@action("builtin.http_request", journal=True)
def http_request(ctx):
    """Send the payload as JSON; 5xx and timeouts are retried, 4xx are business
    errors."""
    url = ctx.parameters.get("url")
    if not url:
        raise BusinessError("parameter 'url' is required", code="bad_parameters")
    method = ctx.parameters.get("method", "POST").upper()
    timeout = float(ctx.parameters.get("timeout", 10))
    headers = {
        "Idempotency-Key": ctx.idempotency_key,
        **ctx.parameters.get("headers", {}),
    }
    body = ctx.payload if method not in {"GET", "HEAD", "DELETE"} else None
    # transport errors and timeouts propagate: application errors, retried
    response = http_client().request(
        method, url, json=body, headers=headers, timeout=timeout
    )
    if response.status_code >= 500:
        raise RuntimeError(f"{method} {url} answered {response.status_code}")
    if response.status_code >= 400:
        raise BusinessError(
            f"{method} {url} answered {response.status_code}: {response.text[:200]}",
            code=f"http_{response.status_code}",
        )
    ref = ""
    output = dict(ctx.payload)
    if "json" in response.headers.get("content-type", ""):
        data = response.json()
        if isinstance(data, dict):
            ref = str(data.get("id", ""))
            output["response"] = data
    return Result(outputs=[output], result_ref=ref or str(response.status_code))


@action("builtin.send_email", journal=True)
def send_email(ctx):
    """Send an e-mail (parameters: to, subject, body; {field} placeholders filled)."""
    params = ctx.parameters
    values = {k: v for k, v in ctx.payload.items() if isinstance(v, (str, int, float))}
    try:
        to = [addr.format(**values) for addr in params.get("to", [])] or [
            ctx.payload["email"]
        ]
        subject = params.get("subject", "").format(**values)
        body = params.get("body", "").format(**values)
    except (KeyError, IndexError) as exc:
        raise BusinessError(
            f"cannot fill the message: missing {exc}", code="bad_template"
        )
    message = EmailMessage(
        subject=subject,
        body=body,
        to=to,
        headers={"X-Idempotency-Key": ctx.idempotency_key},
    )
    message.send()
    return Result(
        outputs=[ctx.payload], result_ref=message.extra_headers.get("Message-ID", "")
    )


@action("builtin.request_approval")
def request_approval(ctx):
    """Park the item until a named approver decides; approved items flow on."""
    if ctx.approval and ctx.approval.get("decision") == "approve":
        return [{**ctx.payload, **(ctx.approval.get("data") or {})}]
    raise AwaitApproval(
        approvers=ctx.parameters.get("approvers", []),
        deadline_seconds=ctx.parameters.get("deadline_seconds"),
    )


@action("builtin.robot", robot=True)
def robot(ctx):
    """Run an external robot (parameters: command, cwd, env, grace_seconds)."""
    # A robot step run hands the whole step run to runs.robots.runner, which starts
    # the robot once and lets it reserve items through the work-items API; the
    # engine never calls this per item.
    raise RuntimeError("builtin.robot runs once per step run, not per item")


@action("builtin.run_automation")
def run_automation(ctx):
    """Run another automation as a child run per item (a job); take its outcome."""
    # not at module level: automations never imports runs at load (runs imports
    # automations' models; the apps load in that order)
    from runs.engine.children import child_run_step

    return child_run_step(ctx)
