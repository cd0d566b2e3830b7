"""Admin downloads of evidence packs: a run's (run page) and a period's (period
report). Wired by `RunAdmin.get_urls`; same rights as reading the runs."""

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse

from automations.workspaces import VIEW_RUNS, may_somewhere

from ..reports import PeriodForm, report_runs
from ..selectors import runs_for, sees_every_workspace
from .packs import MAX_WEB_PACK_RUNS, pack_response, period_pack, run_pack


def run_evidence_view(model_admin, request, object_id):
    run = model_admin.get_object(request, unquote(object_id))
    if run is None:
        raise Http404("no such run")
    if not model_admin.has_view_permission(request, run):
        raise PermissionDenied
    return pack_response(
        lambda out: run_pack(out, run), f"evidence-run-{run.number}.zip"
    )


def period_evidence_view(model_admin, request):
    """The evidence pack of the period report's runs (its query string)."""
    if not may_somewhere(request.user, VIEW_RUNS):
        raise PermissionDenied
    form = PeriodForm(request.GET)
    back = reverse("admin:runs_run_report") + "?" + request.GET.urlencode()
    if not form.is_valid():
        model_admin.message_user(
            request, f"No evidence pack: {form.errors.as_text()}", messages.ERROR
        )
        return HttpResponseRedirect(back)
    data = form.cleaned_data
    runs = report_runs(
        data["start"],
        data["end"],
        include_test_cases=data["include_test_cases"],
        within=runs_for(request.user, workspace=data["workspace"]),
    )
    # configuration events are of every workspace: only for whoever sees them all
    with_global = sees_every_workspace(request.user) and not data["workspace"]
    if runs.count() > MAX_WEB_PACK_RUNS:
        model_admin.message_user(
            request,
            f"The period has more than {MAX_WEB_PACK_RUNS} runs: choose a shorter "
            "one, or use manage.py export_evidence --from … --to ….",
            messages.ERROR,
        )
        return HttpResponseRedirect(back)
    name = f"evidence-{data['start']:%Y%m%d}-{data['end']:%Y%m%d}.zip"
    return pack_response(
        lambda out: period_pack(
            out, data["start"], data["end"], runs=runs, with_global=with_global
        ),
        name,
    )
