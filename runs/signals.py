"""Signals other parts (webhooks, notifications) listen to.

`run_state_changed` is sent after the transaction that moved a run commits, once per
move, with `run_id`, `before` and `after` (state values) and `actor_label`. Receivers
must not raise: a failure is logged and the others still run.

Webhook deliveries and notifications do not listen here: a crash between the commit
and a receiver would lose them. They are written in the move's own transaction
(`runs.outbox`) and sent after commit.
"""

import django.dispatch

run_state_changed = django.dispatch.Signal()
