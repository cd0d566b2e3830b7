"""Executions: runs, step runs, work items, and the append-only ledger.

A package by domain; every model name is imported here, so `from runs.models import X`
works everywhere and Django registers each model with the runs app.
`state` columns are written only by `runs.machines`; the ledger tables (AuditEvent,
RunItem) only by `runs.ledger`.
"""

from .conditions import one_of
from .items import WorkItem, WorkItemFile, work_item_file_path
from .ledger import (
    ActionResult,
    AuditEvent,
    LedgerHead,
    LedgerRecord,
    RunItem,
    Sequence,
    run_item_ledger_fields,
)
from .outputs import RunOutput
from .runs import Run, RunQuerySet, StepRun

# isort: split
# Models that live beside their code (e-mail intake and notifications in runs.mail,
# the API's and webhooks' in runs.api / runs.webhooks, test cases in runs.regression),
# imported here so Django registers them with the runs app.
from ..api.models import ApiClient, ApiToken, IdempotencyKey
from ..evidence.models import LedgerCheckpoint
from ..mail.models import AutomationSubscription, InboundMessage, Notification
from ..ops.models import RunSlaBreach
from ..regression.models import TestCase, TestCaseRun
from ..secrets.models import Secret
from ..webhooks.models import Webhook, WebhookAttempt, WebhookDelivery

__all__ = [
    "ActionResult",
    "ApiClient",
    "ApiToken",
    "AuditEvent",
    "AutomationSubscription",
    "IdempotencyKey",
    "InboundMessage",
    "LedgerCheckpoint",
    "LedgerHead",
    "LedgerRecord",
    "Notification",
    "Run",
    "RunItem",
    "RunOutput",
    "RunQuerySet",
    "RunSlaBreach",
    "Secret",
    "Sequence",
    "StepRun",
    "TestCase",
    "TestCaseRun",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "WorkItem",
    "WorkItemFile",
    "one_of",
    "run_item_ledger_fields",
    "work_item_file_path",
]
