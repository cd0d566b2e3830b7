"""Rate limits for the endpoints that start runs.

Rates come from settings (RUNS_API_TRIGGER_RATE, e.g. "120/min"; empty: no limit),
read per request so they follow the environment and test overrides. DRF throttles
count in the cache: use a shared cache (CACHE_URL) when several processes serve.
"""

from rest_framework.throttling import ScopedRateThrottle

from runs.conf import runs_settings


class TriggerRateThrottle(ScopedRateThrottle):
    scope_attr = "throttle_scope"

    def get_rate(self):
        return runs_settings.API_TRIGGER_RATE or None

    def allow_request(self, request, view):
        if getattr(view, self.scope_attr, None) is None:
            return True
        self.scope = getattr(view, self.scope_attr)
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super(ScopedRateThrottle, self).allow_request(request, view)
