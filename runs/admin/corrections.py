"""Correcting a failed work item's payload before a retry: a form with the JSON
and a required reason, for operators (`runs.retry_run`) who may see the item;
recorded by `work_item_payload_edit` with the payload before and after."""

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from ..services import RunsError, work_item_payload_edit
from ..states import IllegalTransition, WorkItemState
from .forms import PayloadEditForm

EDIT_PERMISSION = "runs.retry_run"


def payload_edit_view(admin, request, item_id):
    item = (
        admin.get_queryset(request)
        .select_related("run__automation", "step")
        .filter(pk=item_id)
        .first()
    )
    if item is None or not admin.has_view_permission(request, item):
        raise Http404("no such work item")
    if not request.user.has_perm(EDIT_PERMISSION):
        raise PermissionDenied
    initial = {"payload": item.payload}
    form = PayloadEditForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                work_item_payload_edit(
                    item.run,
                    actor=request.user,
                    work_item_id=item.pk,
                    payload=form.cleaned_data["payload"],
                    reason=form.cleaned_data["reason"],
                )
            except (RunsError, IllegalTransition) as exc:
                form.add_error(None, str(exc))
            else:
                admin.log_change(request, item, "payload edited")
                messages.success(
                    request,
                    f"Payload of work item {item.pk} corrected; retry it from the "
                    "run page.",
                )
                return HttpResponseRedirect(
                    reverse("admin:runs_run_change", args=[item.run_id])
                )
    context = {
        **admin.admin_site.each_context(request),
        "opts": admin.opts,
        "title": f"Correct the payload of work item {item.pk}",
        "item": item,
        "run": item.run,
        "form": form,
        "editable": item.state == WorkItemState.FAILED,
        "current": json.dumps(item.payload, indent=2, ensure_ascii=False),
    }
    return TemplateResponse(
        request, "admin/runs/workitem/payload_edit.html", context, status=status
    )
