"""Writing secrets and re-encrypting after a key rotation. The config-audit
receivers (runs.evidence.config) record `secret.created|changed|deleted` with
names and key names, never values."""

import json

from django.core.exceptions import ValidationError
from django.db import transaction

from automations.models import DEFAULT_WORKSPACE
from automations.workspaces import UnknownWorkspace, workspace_get

from ..webhooks.models import Webhook
from . import crypto
from .models import MAX_VALUES_BYTES, Secret, values_problem

MAX_STDIN_BYTES = MAX_VALUES_BYTES * 2  # JSON escapes included


class SecretInputError(ValueError):
    """Values that cannot be stored; the message names why, never a value."""


def values_parse(raw: str) -> dict:
    """A JSON object of string → string from text (stdin, a form), or
    SecretInputError."""
    if len(raw.encode()) > MAX_STDIN_BYTES:
        raise SecretInputError(f"the values are over {MAX_STDIN_BYTES} bytes")
    try:
        values = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        # the message of json's error quotes no input, only where it broke
        position = getattr(exc, "pos", None)
        where = f" at character {position}" if position is not None else ""
        raise SecretInputError(f"not valid JSON{where}") from None
    problem = values_problem(values)
    if problem:
        raise SecretInputError(problem)
    return values


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def secret_set(
    name: str,
    values: dict,
    *,
    description: str | None = None,
    workspace: str = DEFAULT_WORKSPACE,
):
    """Create the secret `name` of the workspace `workspace` (a slug) or replace
    all its values; (secret, created). An unknown workspace is SecretInputError
    and writes nothing."""
    try:
        where = workspace_get(workspace)
    except UnknownWorkspace as exc:
        raise SecretInputError(str(exc)) from None
    with transaction.atomic():
        secret = (
            Secret.objects.select_for_update()
            .filter(workspace=where, name=name)
            .first()
        )
        created = secret is None
        if created:
            secret = Secret(workspace=where, name=name)
        if description is not None:
            secret.description = description
        try:
            secret.set_values(values)
            secret.full_clean()
        except ValidationError as exc:
            raise SecretInputError("; ".join(exc.messages)) from None
        secret.save()
    return secret, created


def secrets_reencrypt() -> tuple[int, int]:
    """Every secret's and webhook secret's ciphertext under the newest key of
    RUNS_SECRET_KEYS; returns (secrets, webhooks). One transaction: a value no
    key opens (UndecryptableError) rewrites nothing. Values do not change, so the
    rows are updated without the config-audit receivers; one audit event
    `secrets.reencrypted` records the rotation (counts only)."""
    from .. import ledger
    from ..evidence.config import current_actor

    secrets = webhooks = 0
    with transaction.atomic():
        for pk, token in Secret.objects.values_list("pk", "ciphertext"):
            Secret.objects.filter(pk=pk).update(ciphertext=crypto.reencrypt(token))
            secrets += 1
        # the column raw: the field decrypts on read and encrypts on write
        for hook in Webhook.objects.only("pk", "secret"):
            if hook.secret:
                Webhook.objects.filter(pk=hook.pk).update(secret=hook.secret)
                webhooks += 1
        # one event for the rotation: how many, under which key count, no value
        actor, label = current_actor()
        ledger.append(
            events=[
                ledger.audit_event(
                    verb="secrets.reencrypted",
                    actor=actor,
                    actor_label=label,
                    after={
                        "secrets": secrets,
                        "webhooks": webhooks,
                        "keys": len(crypto.configured_keys()) or "derived",
                    },
                )
            ]
        )
    return secrets, webhooks
