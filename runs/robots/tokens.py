"""Robot credentials: bearer tokens scoped to one step run, and signed file URLs.

A token is `rc1.<step run id>.<HMAC of the step run id and its lease token>`, one
per scope ("workitem" for RC_API_WORKITEM_TOKEN, "process" for
RC_API_PROCESS_TOKEN, "secret" for RC_API_SECRET_TOKEN, the Vault API). Nothing
is stored: the step run's lease token changes
each time the step run starts, and a token is accepted only while its step run is
running under that lease, so a token dies with its step run.
"""

from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

from ..models import StepRun, WorkItemFile
from ..states import StepRunState

PREFIX = "rc1"
SCOPES = ("workitem", "process", "secret")


class BadToken(Exception):
    """Malformed or forged: the caller is not authenticated (401)."""


class ExpiredToken(Exception):
    """Genuine, but its step run has ended or restarted (403)."""


def _mac(scope: str, step_run_id: int, lease_token) -> str:
    return salted_hmac(
        f"runs.robots.token.{scope}",
        f"{step_run_id}:{lease_token}",
        algorithm="sha256",
    ).hexdigest()


def token_for(step_run: StepRun, scope: str) -> str:
    if scope not in SCOPES or step_run.lease_token is None:
        raise ValueError("a robot token needs a scope and a step run holding a lease")
    return f"{PREFIX}.{step_run.pk}.{_mac(scope, step_run.pk, step_run.lease_token)}"


def step_run_for(token: str, scope: str) -> StepRun:
    """The running step run `token` was issued for, or BadToken / ExpiredToken."""
    parts = (token or "").split(".")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1].isdigit():
        raise BadToken("malformed robot token")
    step_run = (
        StepRun.objects.select_related(
            "run", "run__automation__workspace", "step", "step__version"
        )
        .filter(pk=int(parts[1]))
        .first()
    )
    if step_run is None:
        raise BadToken("unknown robot token")
    current_ok = step_run.lease_token is not None and constant_time_compare(
        _mac(scope, step_run.pk, step_run.lease_token), parts[2]
    )
    if not current_ok:
        # a token of an earlier lease of this step run is genuine but expired; we
        # cannot tell it from a forgery without storing old leases, so both are
        # refused, a forgery as unauthenticated
        if step_run.state != StepRunState.RUNNING:
            raise ExpiredToken(f"step run {step_run.pk} has ended")
        raise BadToken("invalid robot token")
    if step_run.state != StepRunState.RUNNING:
        raise ExpiredToken(f"step run {step_run.pk} has ended")
    return step_run


# -- signed file URLs -------------------------------------------------------------

DOWNLOAD_SALT = "runs.robots.file.download"
UPLOAD_SALT = "runs.robots.file.upload"


def file_url_value(found) -> str:
    """The signed part of a file's download URL: its id and its random token
    (checked against the row), expiring after RUNS_ROBOT_URL_SECONDS."""
    return sign({"file": found.pk, "token": found.token}, DOWNLOAD_SALT)


def file_for_url(value: dict):
    """The file a verified URL value names, or None (unknown file, or a token that
    is not this file's: a URL signed without it, or made for another file)."""
    file_id, token = value.get("file"), value.get("token")
    if not isinstance(file_id, int) or not isinstance(token, str) or not token:
        return None
    found = WorkItemFile.objects.filter(pk=file_id).first()
    if found is None or not constant_time_compare(found.token, token):
        return None
    return found


def sign(value: dict, salt: str) -> str:
    return signing.dumps(value, salt=salt, compress=True)


def unsign(signed: str, salt: str, max_age: int) -> dict:
    """The signed value, or signing.SignatureExpired / signing.BadSignature."""
    return signing.loads(signed, salt=salt, max_age=max_age)
