"""/healthz, /readyz and /metrics: plain Django views, outside the admin and API.

The probes answer anyone (a load balancer has no login) and say only which check
failed. /metrics asks for `Authorization: Bearer <RUNS_METRICS_TOKEN>` when that
setting is set; without it, keep the path off the public network.
"""

import hmac

from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import generate_latest

from ..conf import runs_settings
from . import health
from .metrics import registry

# the classic text format every Prometheus reads (our names need no UTF-8 escaping)
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@never_cache
@require_safe
def healthz(request):
    """The process answers (no database, no broker: a restart would not help)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request):
    """200 when the database, the broker and a worker cluster answer; 503 with
    the failing checks named otherwise."""
    checks = health.readiness()
    failed = [name for name, reason in checks.items() if reason is not None]
    body = {
        "status": "unavailable" if failed else "ok",
        "failed": failed,
        "checks": {name: reason or "ok" for name, reason in checks.items()},
    }
    return JsonResponse(body, status=503 if failed else 200)


def _metrics_refusal(request) -> HttpResponse | None:
    token = runs_settings.METRICS_TOKEN
    if not token:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        response = HttpResponse(status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(given.strip().encode(), str(token).encode()):
        return HttpResponse(status=403)
    return None


@never_cache
@require_safe
def metrics(request):
    """Prometheus text format, computed from the database now."""
    refusal = _metrics_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(generate_latest(registry), content_type=METRICS_CONTENT_TYPE)
