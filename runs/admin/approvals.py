"""The approval page of one work item: what is being decided (payload, step,
deadline, since when it waits), and the decision, for those who may make it.

The typed input form is built from the step's `input_schema`
(`automations.input_schema`); whatever the form accepts, the service checks the
data against the schema again (`work_item_decide`), as it does for the API. Those
who may not decide see why instead of the form; a decision they post all the
same is refused and recorded (`work_item.decision_refused`).
"""

import json

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from ..models import AuditEvent, Run, WorkItem
from ..services import RunsError
from ..services.approvals import (
    DecisionRefused,
    InvalidInput,
    decision_refusal,
    input_schema_of,
    work_item_decide,
)
from ..states import IllegalTransition, WorkItemState
from .forms import input_data_field, json_object


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Recorded in the audit trail; required to reject.",
    )

    def clean(self):
        data = super().clean()
        if data.get("decision") == "reject" and not (data.get("reason") or "").strip():
            self.add_error("reason", "A reason is required to reject.")
        return data


class FreeInputForm(forms.Form):
    """No schema: the input is any JSON object."""

    data = input_data_field()

    def input_data(self) -> dict:
        return json_object(self.cleaned_data.get("data"))


def _field(spec: dict, required: bool) -> forms.Field:
    kind = spec.get("type")
    common = {
        "required": required and kind != "boolean",
        "label": spec.get("title") or None,
        "help_text": spec.get("description", ""),
    }
    if kind == "boolean":
        return forms.BooleanField(**common)
    if kind == "integer":
        return forms.IntegerField(
            min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
        )
    if kind == "number":
        return forms.FloatField(
            min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
        )
    if "enum" in spec:
        choices = [(str(v), str(v)) for v in spec["enum"]]
        return forms.ChoiceField(choices=[("", "---------"), *choices], **common)
    validators = []
    if spec.get("pattern"):
        validators.append(
            RegexValidator(spec["pattern"], f"Must match {spec['pattern']}")
        )
    return forms.CharField(
        min_length=spec.get("minLength"),
        max_length=spec.get("maxLength"),
        validators=validators,
        strip=False,
        **common,
    )


class SchemaInputForm(forms.Form):
    """One field per property of an `input_schema`."""

    schema: dict = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        required = set(self.schema.get("required", []))
        for name, spec in self.schema.get("properties", {}).items():
            self.fields[name] = _field(spec, name in required)

    def input_data(self) -> dict:
        data = {}
        for name, spec in self.schema.get("properties", {}).items():
            value = self.cleaned_data.get(name)
            if spec.get("type") == "boolean":
                data[name] = bool(value)
            elif value not in (None, ""):
                data[name] = value
        return data


def input_form_class(schema: dict | None) -> type[forms.Form]:
    if not schema:
        return FreeInputForm
    return type("InputForm", (SchemaInputForm,), {"schema": schema})


def schema_fields(schema: dict | None) -> list[dict]:
    """The fields an approval asks for, from the step's `input_schema`: name,
    title, type, whether required, constraints and description (for the page's
    table of what is asked)."""
    if not schema:
        return []
    required = set(schema.get("required", []))
    rows = []
    for name, spec in (schema.get("properties") or {}).items():
        spec = spec if isinstance(spec, dict) else {}
        rules = []
        if "enum" in spec:
            rules.append("one of " + ", ".join(str(v) for v in spec["enum"]))
        for key, word in (
            ("minimum", "at least"),
            ("maximum", "at most"),
            ("minLength", "min. length"),
            ("maxLength", "max. length"),
            ("pattern", "matches"),
        ):
            if key in spec:
                rules.append(f"{word} {spec[key]}")
        rows.append(
            {
                "name": name,
                "title": spec.get("title", ""),
                "type": spec.get("type", "any"),
                "required": name in required,
                "rules": "; ".join(rules),
                "description": spec.get("description", ""),
            }
        )
    return rows


# the decisions shown on an approval page (the audit trail keeps them all)
DECISIONS_SHOWN = 50


def prior_decisions(run, item) -> list:
    """The decisions and refused attempts on `item`, oldest first, from the run's
    audit trail (index audit_run_seq, bounded)."""
    return list(
        AuditEvent.objects.filter(
            run=run, verb__startswith="work_item.", before__work_item=item.pk
        )
        .select_related("actor")
        .order_by("seq")[:DECISIONS_SHOWN]
    )


def decide_view(admin, request, object_id, item_id):
    """GET: the approval page. POST: the decision (through `work_item_decide`)."""
    run = admin.get_object(request, unquote(object_id))
    if run is None or not admin.has_view_permission(request, run):
        raise Http404("no such run")
    item = WorkItem.objects.filter(run=run, pk=item_id).select_related("step").first()
    run = Run.objects.select_related("automation", "version", "run_by").get(pk=run.pk)
    if item is None:
        raise Http404("no such work item")
    awaiting = item.state == WorkItemState.AWAITING_INPUT
    # why not, worked out before anything is offered: no form for who is refused
    refusal = (
        decision_refusal(run, item, request.user, to_actor=True) if awaiting else ""
    )
    schema = input_schema_of(item)
    InputForm = input_form_class(schema)
    decision_form, input_form = DecisionForm(), InputForm(prefix="data")
    status = 200
    if request.method == "POST":
        if not awaiting:
            messages.error(request, f"work item {item.pk} is {item.state}")
            return HttpResponseRedirect(request.path)
        if refusal:
            # the refusal comes before any form: recorded, and nothing else read
            try:
                work_item_decide(
                    run,
                    actor=request.user,
                    work_item_id=item.pk,
                    decision=request.POST.get("decision") or "approve",
                )
            except DecisionRefused as exc:
                messages.error(request, f"Refused (recorded): {exc}")
            status = 403
    if request.method == "POST" and not refusal:
        decision_form = DecisionForm(request.POST)
        input_form = InputForm(request.POST, prefix="data")
        approving = request.POST.get("decision") == "approve"
        if decision_form.is_valid() and (not approving or input_form.is_valid()):
            decision = decision_form.cleaned_data["decision"]
            try:
                work_item_decide(
                    run,
                    actor=request.user,
                    work_item_id=item.pk,
                    decision=decision,
                    data=input_form.input_data() if approving else {},
                    reason=decision_form.cleaned_data["reason"],
                )
            except ValidationError as exc:  # free input that is not an object
                input_form.add_error(None, exc)
            except InvalidInput as exc:
                for where, text in exc.problems:
                    name = where.removeprefix("data.")
                    input_form.add_error(
                        name if name in input_form.fields else None, text
                    )
            except (RunsError, IllegalTransition) as exc:
                messages.error(request, f"Not decided (nothing changed): {exc}")
            else:
                verb = "approved" if approving else "rejected"
                admin.log_change(request, run, f"work item {item.pk} {verb}")
                messages.success(request, f"Work item {item.pk} {verb}.")
                return HttpResponseRedirect(
                    reverse("admin:runs_run_change", args=[run.pk])
                )
        status = 400
    context = {
        **admin.admin_site.each_context(request),
        "opts": admin.opts,
        "title": f"Decide: work item {item.pk} of {run}",
        "run": run,
        "item": item,
        "payload": json.dumps(item.payload, indent=2, ensure_ascii=False),
        "version": run.version,
        "schema_fields": schema_fields(schema),
        "decisions": prior_decisions(run, item),
        "awaiting": awaiting,
        "refusal": refusal,
        "may_decide": awaiting and not refusal,
        "decision_form": decision_form,
        "input_form": input_form,
    }
    return TemplateResponse(
        request, "admin/runs/run/decide.html", context, status=status
    )
