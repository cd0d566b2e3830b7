"""API views: parse, check permissions, call the services, shape the answer.

No view writes `state`; every change goes through `runs.services`, whose errors
`runs.api.errors.api_exception_handler` turns into `{"detail", "code"}` responses.
"""

from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from automations.models import TriggerKind
from automations.workspaces import VIEW_RUNS, may

from .. import services
from ..models import Run, RunItem, WorkItem
from . import serializers as s
from .filters import RunFilter, RunOrdering
from .idempotency import body_hash, key_claim, key_clean, key_complete, key_release
from .pagination import IdCursorPagination, RunCursorPagination, SeqCursorPagination
from .parsers import LimitedJSONParser
from .permissions import (
    HasRunPermission,
    api_trigger_check,
    may_trigger,
    no_api_trigger,
    runs_visible_to,
)
from .throttling import TriggerRateThrottle
from .triggering import trigger_target

REPLAY_HEADER = "Idempotent-Replayed"
TRIGGER = "runs.trigger_run"


def error_responses(*codes) -> dict:
    """The OpenAPI error answers of an endpoint (DRF-shaped `detail`, `code`)."""
    text = {
        400: "Invalid request (bad body, filter or header)",
        401: "Not authenticated",
        403: "Authenticated but not allowed",
        404: "Unknown run, automation, work item or file",
        409: "Illegal transition, automation not runnable, or key in flight",
        413: "Body or one input larger than the limit",
        422: "Idempotency-Key reused with another body",
        429: "Throttled; see Retry-After",
    }
    return {
        code: OpenApiResponse(s.ErrorSerializer, description=text[code])
        for code in codes
    }


READ_ERRORS = (401, 403, 404)
LIST_ERRORS = (400, 401, 403, 404)  # 400: a malformed cursor or filter
CONTROL_ERRORS = (400, 401, 403, 404, 409, 413)


class ApiMixin:
    permission_classes = [HasRunPermission]
    parser_classes = [LimitedJSONParser]


def _run_for_response(run: Run) -> Run:
    return Run.objects.select_related(
        "automation", "automation__workspace", "version"
    ).get(pk=run.pk)


@extend_schema(
    tags=["runs"],
    request=s.TriggerSerializer,
    parameters=[
        OpenApiParameter(
            "Idempotency-Key",
            OpenApiTypes.STR,
            OpenApiParameter.HEADER,
            description="Up to 255 printable ASCII characters. The same key and body "
            "return the same run again (header Idempotent-Replayed: true); kept "
            "RUNS_IDEMPOTENCY_KEY_TTL_SECONDS (default 24 h), per user and "
            "automation.",
        )
    ],
    responses={
        202: OpenApiResponse(
            s.RunSerializer,
            description="The run was created, or replayed for a known key.",
        ),
        **error_responses(400, 401, 403, 404, 409, 413, 422, 429),
    },
)
class TriggerView(ApiMixin, generics.GenericAPIView):
    """Start a run of an automation's latest published version (trigger `api`).
    The automation needs an enabled api trigger (403 `no_api_trigger`); a token
    needs a grant for it (403 `not_granted`)."""

    required_permission = TRIGGER
    requires_view = False
    throttle_classes = [TriggerRateThrottle]
    throttle_scope = "runs_trigger"
    serializer_class = s.TriggerSerializer

    def post(self, request, slug):
        target = trigger_target(slug)
        automation = target.automation if target is not None else None
        # another workspace's automation is a 404, as an unknown slug
        if automation is None or not (
            may(request.user, VIEW_RUNS, automation.workspace_id)
            or may(request.user, TRIGGER, automation.workspace_id)
        ):
            raise exceptions.NotFound("No Automation matches the given query.")
        if not may(request.user, TRIGGER, automation.workspace_id):
            raise exceptions.PermissionDenied(
                f"you need the {TRIGGER} permission in this workspace"
            )
        if not may_trigger(request, automation):
            raise exceptions.PermissionDenied(
                f"this API client may not trigger {automation.slug}",
                code="not_granted",
            )
        if target.trigger is None:
            raise no_api_trigger(automation)
        self.target = target
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        inputs = body.validated_data["inputs"]
        self.priority = body.validated_data["priority"]
        raw_key = request.headers.get("Idempotency-Key")
        if raw_key is None:
            run = self._start(automation, inputs)
            return self._accepted(run)
        # the default priority hashes as before it existed: keys stored then
        # still replay
        hashed = {"inputs": inputs}
        if self.priority:
            hashed["priority"] = self.priority
        claim = key_claim(
            user=request.user,
            automation=automation,
            key=key_clean(raw_key),
            request_hash=body_hash(hashed),
        )
        if claim.replay:
            return self._accepted(claim.key.run, replayed=True)
        try:
            with transaction.atomic():
                run = self._start(automation, inputs)
                key_complete(claim, run)
        except BaseException:
            key_release(claim)
            raise
        return self._accepted(run)

    def _start(self, automation, inputs) -> Run:
        return services.run_start(
            automation=automation,
            inputs=inputs,
            trigger_kind=TriggerKind.API,
            trigger=self.target.trigger,
            actor=self.request.user,
            priority=self.priority,
            # read with the automation; run_start still validates them (None:
            # it looks them up itself and says what is missing)
            version=self.target.version,
            first_step=self.target.first_step,
        )

    def _accepted(self, run, *, replayed=False) -> Response:
        # a new run answers from what was just written; a replay reads the run now
        data = s.run_representation(
            _run_for_response(run) if replayed else run, self.request
        )
        headers = {"Location": data["url"]}
        if replayed:
            headers[REPLAY_HEADER] = "true"
        return Response(data, status=status.HTTP_202_ACCEPTED, headers=headers)


def _control(body, description, responses=None):
    return extend_schema(
        tags=["runs"],
        request=body,
        description=description,
        responses=responses
        or {200: s.RunSerializer, **error_responses(*CONTROL_ERRORS)},
    )


@extend_schema_view(
    list=extend_schema(
        tags=["runs"],
        responses={200: s.RunSerializer(many=True), **error_responses(400, 401, 403)},
    ),
    retrieve=extend_schema(
        tags=["runs"], responses={200: s.RunSerializer, **error_responses(*READ_ERRORS)}
    ),
)
class RunViewSet(ApiMixin, viewsets.ReadOnlyModelViewSet):
    """Runs, newest first, and the operator's controls on one run."""

    queryset = Run.objects.select_related(
        "automation", "automation__workspace", "version"
    )
    serializer_class = s.RunSerializer
    pagination_class = RunCursorPagination
    filter_backends = [DjangoFilterBackend, RunOrdering]
    filterset_class = RunFilter
    throttle_scope = None
    lookup_value_regex = "[^/]+"  # any id reaches the view and gets a JSON 404

    def get_queryset(self):
        # the grants: a run this request may not see is a 404 here, for every action
        return runs_visible_to(self.request, super().get_queryset())

    def get_throttles(self):
        if self.action == "rerun":  # re-run starts a run: same limit as triggers
            self.throttle_scope = "runs_trigger"
            return [TriggerRateThrottle()]
        return super().get_throttles()

    def _body(self, serializer_class) -> dict:
        body = serializer_class(data=self.request.data)
        body.is_valid(raise_exception=True)
        return body.validated_data

    def _answer(self, run, code=status.HTTP_200_OK) -> Response:
        return Response(self.get_serializer(_run_for_response(run)).data, status=code)

    @_control(
        s.StopSerializer,
        "Stop the run: in-flight step runs complete or "
        "terminate; pending items end failed or done.",
    )
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        run = self.get_object()
        body = self._body(s.StopSerializer)
        return self._answer(services.run_stop(run, actor=request.user, **body))

    @_control(
        s.RetrySerializer,
        "Send failed items (all, or those named) back to "
        "pending; reopens a finished run.",
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        run = self.get_object()
        body = self._body(s.RetrySerializer)
        services.run_retry(
            run,
            actor=request.user,
            work_item_ids=body["work_items"],
            reason=body["reason"],
            reread_subjects=body["reread_subjects"],
        )
        return self._answer(run)

    @_control(
        s.ResolveSerializer,
        "Mark failed items resolved by a person, with a "
        "note; an unresolved run with nothing left failed becomes completed.",
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        run = self.get_object()
        body = self._body(s.ResolveSerializer)
        services.run_resolve(
            run, actor=request.user, note=body["note"], work_item_ids=body["work_items"]
        )
        return self._answer(run)

    @_control(
        s.ReasonSerializer,
        "Archive a run (hidden from default lists); an active run keeps running.",
    )
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        run = self.get_object()
        body = self._body(s.ReasonSerializer)
        services.run_archive(run, actor=request.user, reason=body["reason"])
        return self._answer(run)

    @_control(s.ReasonSerializer, "Unarchive a run.")
    @action(detail=True, methods=["post"])
    def unarchive(self, request, pk=None):
        run = self.get_object()
        body = self._body(s.ReasonSerializer)
        services.run_unarchive(run, actor=request.user, reason=body["reason"])
        return self._answer(run)

    @_control(
        s.RerunSerializer,
        "A new run with the same inputs on the original or the latest published "
        "version, recorded as trigger `api` by the caller; answers the new run. "
        "Needs an enabled api trigger (403 no_api_trigger); a draft version is "
        "409 not_runnable (drafts re-run only from admin).",
        responses={202: s.RunSerializer, **error_responses(*CONTROL_ERRORS, 429)},
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        run = self.get_object()
        body = self._body(s.RerunSerializer)
        api_trigger_check(run.automation)
        # an API re-run is an API start: published versions only (drafts run by hand)
        new = services.run_rerun(
            run,
            actor=request.user,
            version=body["version"],
            trigger_kind=TriggerKind.API,
            failed_only=body["failed_only"],
        )
        return self._answer(new, status.HTTP_202_ACCEPTED)

    @_control(
        s.InputSerializer,
        "Approve or reject a work item awaiting input (four "
        "eyes: not by the person who started the run).",
    )
    @action(detail=True, methods=["post"])
    def input(self, request, pk=None):
        run = self.get_object()
        body = self._body(s.InputSerializer)
        services.work_item_decide(
            run,
            actor=request.user,
            work_item_id=body["work_item"],
            decision=body["decision"],
            data=body["data"],
            reason=body["reason"],
        )
        return self._answer(run)


class _RunChildren(ApiMixin, generics.ListAPIView):
    def get_queryset(self):
        run = get_object_or_404(
            runs_visible_to(self.request).only("pk"), pk=self.kwargs["pk"]
        )
        return self.model.objects.filter(run=run).select_related("step")


@extend_schema(
    tags=["runs"],
    responses={200: s.WorkItemSerializer(many=True), **error_responses(*LIST_ERRORS)},
)
class RunWorkItemsView(_RunChildren):
    """The run's work items, in creation order."""

    model = WorkItem
    serializer_class = s.WorkItemSerializer
    pagination_class = IdCursorPagination


@extend_schema(
    tags=["runs"],
    responses={200: s.RunItemSerializer(many=True), **error_responses(*LIST_ERRORS)},
)
class RunItemsView(_RunChildren):
    """The run's run items (one action on one subject each), in ledger order."""

    model = RunItem
    serializer_class = s.RunItemSerializer
    pagination_class = SeqCursorPagination


class MeSerializer(s.serializers.Serializer):
    username = s.serializers.CharField()
    auth = s.serializers.ChoiceField(
        choices=[("token", "token"), ("session", "session")]
    )


@extend_schema(tags=["auth"], responses={200: MeSerializer, **error_responses(401)})
class MeView(generics.GenericAPIView):
    """Who the credentials belong to: lets an integration check its token."""

    serializer_class = MeSerializer

    def get(self, request):
        from .permissions import by_token

        return Response(
            {
                "username": request.user.get_username(),
                "auth": "token" if by_token(request) else "session",
            }
        )


@csrf_exempt  # it changes nothing; without this a POST met the HTML CSRF 403
def api_not_found(request, *args, **kwargs):
    """Unmatched paths under the API answer in the API's error shape, not HTML,
    whatever the method."""

    return JsonResponse(
        {"detail": f"no API endpoint at {request.path}", "code": "not_found"},
        status=404,
    )
