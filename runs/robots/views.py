"""The work-items API as `robocorp-workitems` calls it (paths and bodies follow its
RobocorpAdapter), plus the signed file URLs it downloads from and uploads to.

Errors keep the API's shape `{"detail", "code"}`: 400 bad body, 401 bad token,
403 token of an ended step run or an expired file URL, 404 foreign or unknown
item, 409 an item the robot does not hold, 413 a file over the limit.
"""

from django.core import signing
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.response import Response
from rest_framework.views import APIView

from ..api.parsers import LimitedJSONParser
from ..conf import runs_settings
from ..files import file_response
from ..models import StepRun
from ..states import StepRunState
from . import outputs, services, tokens
from .services import RobotApiError, RobotSession


class RobotTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` with a token of one running step run."""

    scope = "workitem"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer" or len(header) != 2:
            raise exceptions.NotAuthenticated("a robot bearer token is required")
        try:
            step_run = tokens.step_run_for(header[1].decode("latin-1"), self.scope)
        except tokens.BadToken as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        except tokens.ExpiredToken as exc:
            raise exceptions.PermissionDenied(str(exc), code="token_expired") from None
        return (None, RobotSession(step_run))

    def authenticate_header(self, request):
        return 'Bearer realm="robots"'


class ProcessTokenAuthentication(RobotTokenAuthentication):
    scope = "process"


class RobotView(APIView):
    authentication_classes = [RobotTokenAuthentication]
    permission_classes = []
    throttle_classes = []
    parser_classes = [LimitedJSONParser]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.auth is None:
            raise exceptions.NotAuthenticated("a robot bearer token is required")
        session: RobotSession = request.auth
        # a step run's token reaches its own workspace's paths only
        if kwargs.get("workspace") != session.run.automation.workspace.slug:
            raise exceptions.NotFound("unknown workspace")
        if "process" in kwargs and kwargs["process"] != session.run.automation.slug:
            raise exceptions.NotFound("unknown process")
        if "process_run" in kwargs and kwargs["process_run"] != str(session.run.pk):
            raise exceptions.NotFound("unknown process run")
        if "robot_run" in kwargs and kwargs["robot_run"] != str(session.step_run.pk):
            raise exceptions.NotFound("unknown robot run")

    def handle_exception(self, exc):
        if isinstance(exc, RobotApiError):
            exc = _api_exception(exc)
        return super().handle_exception(exc)


def _api_exception(exc: RobotApiError) -> exceptions.APIException:
    error = exceptions.APIException(str(exc), code=exc.code)
    error.status_code = exc.status
    return error


class ProcessView(RobotView):
    authentication_classes = [ProcessTokenAuthentication]


@extend_schema(exclude=True)
class ReserveView(ProcessView):
    def post(self, request, **kwargs):
        item_id = services.work_item_reserve(request.auth)
        return Response({"workItemId": None if item_id is None else str(item_id)})


@extend_schema(exclude=True)
class ReleaseView(ProcessView):
    def post(self, request, **kwargs):
        return Response(services.work_item_release(request.auth, request.data))


@extend_schema(exclude=True)
class OutputView(ProcessView):
    def post(self, request, parent, **kwargs):
        return Response(outputs.work_item_output(request.auth, parent, request.data))


@extend_schema(exclude=True)
class PayloadView(RobotView):
    def get(self, request, item, **kwargs):
        return Response(outputs.work_item_payload(request.auth, item))

    def put(self, request, item, **kwargs):
        return Response(outputs.work_item_payload_set(request.auth, item, request.data))


@extend_schema(exclude=True)
class FilesView(RobotView):
    def get(self, request, item, **kwargs):
        return Response(outputs.work_item_files(request.auth, item))

    def post(self, request, item, **kwargs):
        session: RobotSession = request.auth
        work_item, name, size = outputs.file_upload_check(session, item, request.data)
        policy = tokens.sign(
            {
                "step_run": session.step_run.pk,
                "lease": str(session.token),
                "item": work_item.pk,
                "name": name,
                "size": size,
            },
            tokens.UPLOAD_SALT,
        )
        url = request.build_absolute_uri(reverse("runs-robots:upload", args=[policy]))
        return Response({"url": url, "fields": {"key": name}})


@extend_schema(exclude=True)
class FileView(RobotView):
    def get(self, request, item, file, **kwargs):
        found = outputs.work_item_file(request.auth, item, file)
        signed = tokens.file_url_value(found)
        url = request.build_absolute_uri(reverse("runs-robots:download", args=[signed]))
        return Response({"url": url})

    def delete(self, request, item, file, **kwargs):
        outputs.file_delete(request.auth, item, file)
        return Response({})


def _error(status: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status)


def _content_length(request) -> int | None:
    """The declared body size; None when the header is not a plain number (a
    missing header is an empty body, as for Django)."""
    raw = request.META.get("CONTENT_LENGTH")
    if raw is None or raw == "":
        return 0
    if not (raw.isascii() and raw.isdigit()):
        return None
    # past 18 digits it is over any limit (and int() of 4,300 digits raises)
    return int(raw) if len(raw) <= 18 else 10**18


@require_GET
def file_download(request, signed):
    """A signed, expiring URL of one file (its id and random token): no other
    credential (the client sends none)."""
    try:
        value = tokens.unsign(
            signed, tokens.DOWNLOAD_SALT, runs_settings.ROBOT_URL_SECONDS
        )
    except signing.SignatureExpired:
        return _error(403, "this file URL has expired", "url_expired")
    except signing.BadSignature:
        return _error(403, "invalid file URL", "bad_signature")
    found = tokens.file_for_url(value)
    if found is None:
        return _error(404, "no such file (or it was replaced)", "not_found")
    return file_response(found)


@csrf_exempt
@require_POST
def file_upload(request, signed):
    """The presigned POST target: multipart `fields` + `file`, no other credential."""
    try:
        policy = tokens.unsign(
            signed, tokens.UPLOAD_SALT, runs_settings.ROBOT_URL_SECONDS
        )
    except signing.SignatureExpired:
        return _error(403, "this upload URL has expired", "url_expired")
    except signing.BadSignature:
        return _error(403, "invalid upload URL", "bad_signature")
    limit = min(policy["size"], runs_settings.ROBOT_MAX_FILE_BYTES)
    # refuse before Django spools the body: multipart overhead is small
    declared = _content_length(request)
    if declared is None:
        return _error(
            400, "Content-Length: must be a number of bytes (digits only)", "invalid"
        )
    if declared > limit + 65_536:
        return _error(413, f"the upload is larger than its {limit} bytes", "too_large")
    step_run = (
        StepRun.objects.select_related("run", "step", "step__version")
        .filter(pk=policy["step_run"])
        .first()
    )
    if (
        step_run is None
        or step_run.state != StepRunState.RUNNING
        or str(step_run.lease_token) != policy["lease"]
    ):
        return _error(
            403, "the robot run this URL was issued to has ended", "token_expired"
        )
    upload = request.FILES.get("file")
    if upload is None:
        return _error(400, "file: required (multipart form field)", "invalid")
    if upload.size > limit:
        return _error(413, f"the file is larger than its {limit} bytes", "too_large")
    try:
        outputs.file_store(
            RobotSession(step_run), policy["item"], policy["name"], upload
        )
    except RobotApiError as exc:
        return _error(exc.status, str(exc), exc.code)
    return HttpResponse(status=204)
