"""The audit trail downloads of the runs admin (runs.exports' streaming CSV): of
one run (run page), of the runs a list shows (its filters and search), and of
the runs created in a date range. Wired by `RunAdmin.get_urls`; each needs the
export permission, and exports only the runs of the workspaces where the person
holds it."""

import datetime

from django import forms
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest
from django.template.response import TemplateResponse

from automations.workspaces import may_somewhere

from ..exports import audit_filename, audit_response
from ..models import Run
from ..selectors import runs_for
from .run_actions import EXPORT_PERMISSION

# a longer period is an evidence pack's job (manage.py export_evidence)
MAX_RANGE_DAYS = 366


class AuditRangeForm(forms.Form):
    """A date range of run creation, both days included, in UTC."""

    start = forms.DateField(
        label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Included: the runs created on this day are in the file.",
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start is None or end is None:
            return data
        if end < start:
            raise forms.ValidationError("'To' must be on or after 'From'.")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise forms.ValidationError(
                f"Choose at most {MAX_RANGE_DAYS} days; for a longer period use "
                "manage.py export_evidence --from … --to …."
            )
        if end >= datetime.date.max:
            raise forms.ValidationError("'To' is past the last day there is.")
        return data

    def period(self):
        """[start, end) as UTC instants: the end day's runs included."""
        start, end = self.cleaned_data["start"], self.cleaned_data["end"]
        midnight = datetime.time(tzinfo=datetime.UTC)
        after = end + datetime.timedelta(days=1)
        return (
            datetime.datetime.combine(start, midnight),
            datetime.datetime.combine(after, midnight),
        )


def runs_audit_download(runs):
    """The audit CSV of `runs`, named after the run when there is one only;
    None when there are none."""
    numbers = list(runs.order_by("number").values_list("number", flat=True)[:2])
    if not numbers:
        return None
    one = numbers[0] if len(numbers) == 1 else None
    return audit_response(runs, audit_filename(run_number=one))


def _exporter(request):
    if not may_somewhere(request.user, EXPORT_PERMISSION):
        raise PermissionDenied


def run_audit_view(model_admin, request, object_id):
    """One run's audit trail, for whoever may export in its workspace; a run the
    person may not see is a 404."""
    run = model_admin.get_object(request, unquote(object_id))
    if run is None:
        raise Http404("no such run")
    if not model_admin.has_export_permission(request, run):
        raise PermissionDenied
    return audit_response(
        Run.objects.filter(pk=run.pk), audit_filename(run_number=run.number)
    )


def list_audit_view(model_admin, request):
    """The audit trail of the runs the list shows with the same query string
    (filters, search, the archived filter's default), every page of them, out
    of the workspaces where the person may export."""
    _exporter(request)
    try:
        runs = model_admin.get_changelist_instance(request).queryset
    except IncorrectLookupParameters:
        return HttpResponseBadRequest("These filters are not ones the runs list has.")
    runs = model_admin.runs_may(request, runs, EXPORT_PERMISSION)
    return runs_audit_download(runs) or audit_response(runs, audit_filename())


def range_audit_view(model_admin, request):
    """A form of two dates (GET, so the download is a link); with both given, the
    audit trail of the runs created in that range (archived and test case runs
    too: the trail is the record) that the person may export. Bad dates: the
    form again with what is wrong, status 400."""
    _exporter(request)
    asked = "start" in request.GET or "end" in request.GET
    form = AuditRangeForm(request.GET if asked else None)
    status = 200
    if asked and form.is_valid():
        start, end = form.period()
        runs = runs_for(request.user, None, EXPORT_PERMISSION).filter(
            created_at__gte=start, created_at__lt=end
        )
        if runs.exists():
            data = form.cleaned_data
            return audit_response(
                runs, audit_filename(start=data["start"], end=data["end"])
            )
        form.add_error(
            None,
            "No run you may export was created in that range; nothing to download.",
        )
        status = 404
    elif asked:
        status = 400
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Export the audit trail of a date range",
        "form": form,
        "max_days": MAX_RANGE_DAYS,
    }
    return TemplateResponse(
        request, "admin/runs/run/audit_range.html", context, status=status
    )
