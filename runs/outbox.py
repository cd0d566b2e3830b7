"""Side effects of a run's move, written in the move's own transaction (an outbox).

`runs.machines.run_move` calls `run_move_outbox` inside its transaction: the webhook
deliveries and the notifications a move causes are rows that commit, or roll back,
with the move. They are sent after the commit. A process that dies in between
leaves them pending, and the periodic passes send them: `deliveries_retry_due`
(housekeeping) and `notifications_send_due` (the notifications schedule).
"""

import logging

from django.db import transaction

from .approvers import awaiting_notices_record
from .mail.models import NotificationMode
from .mail.notifications import notifications_record, notifications_send, notify_state
from .webhooks.services import deliveries_create

log = logging.getLogger("runs")


def run_move_outbox(run, *, before: str, after: str) -> None:
    """Write what `run` moving from `before` to `after` must send; send it after
    commit. Must be called inside the move's transaction."""
    immediate = []
    try:
        # A savepoint: a fault while writing the outbox (a payload, a recipient) is
        # logged and undoes only these rows, never the move.
        with transaction.atomic():
            deliveries_create(run_id=run.pk, before=before, after=after)
            if notify_state(run, after):
                immediate = [
                    row.pk
                    for row in notifications_record(run=run, state=after)
                    if row.mode == NotificationMode.IMMEDIATE
                ]
    except Exception:
        log.exception("outbox of run %s (%s → %s) not written", run.pk, before, after)
        return
    if immediate:
        # robust: a failed send is already kept in the outbox and retried; it must
        # not surface as an error of the move that committed
        transaction.on_commit(lambda: notifications_send(ids=immediate), robust=True)


def work_items_awaiting_outbox(run, item_ids: list[int]) -> None:
    """Write the notices that `item_ids` of `run` now wait for a decision (an
    e-mail per approver, a `work_item.awaiting_input` webhook event); send the
    e-mails after commit. Must be called inside the transaction that parked them."""
    notices = []
    try:
        with transaction.atomic():  # a savepoint, as for a run's move
            notices = awaiting_notices_record(run, item_ids)
    except Exception:
        log.exception("approval notices of run %s not written", run.pk)
        return
    if notices:
        ids = [row.pk for row in notices]
        transaction.on_commit(lambda: notifications_send(ids=ids), robust=True)
