"""Signal receivers: notifications when a run needs people."""

from django.dispatch import receiver

from ..signals import run_state_changed
from .notifications import NOTIFY_STATES, run_state_notify


@receiver(run_state_changed, dispatch_uid="runs.mail.notify")
def _notify_on_run_state(sender, run_id, before, after, **kwargs):
    if after in NOTIFY_STATES:
        run_state_notify(run_id=run_id, state=after)
