"""Secrets (imported by `runs.models`)."""

import json

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from automations.models import default_workspace_id

from . import crypto

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
KEY_RE = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"
MAX_KEYS = 100
MAX_VALUE_CHARS = 16_384
MAX_VALUES_BYTES = 65_536


def values_problem(values) -> str:
    """What is wrong with a secret's values ("" when nothing): a non-empty JSON
    object of string keys (letters, digits, `_`, `-`) to string values, within
    bounds."""
    import re

    if not isinstance(values, dict) or not values:
        return "the values must be a non-empty JSON object of key → string value"
    if len(values) > MAX_KEYS:
        return f"at most {MAX_KEYS} keys, got {len(values)}"
    for key, value in values.items():
        if not isinstance(key, str) or not re.match(KEY_RE, key) or len(key) > 100:
            return (
                f"key {key!r}: letters, digits, '_' and '-' only, at most 100 "
                "characters"
            )
        if not isinstance(value, str):
            kind = type(value).__name__
            return f"key {key!r}: the value must be a string, got {kind}"
        if not value:
            return f"key {key!r}: the value is empty"
        try:
            value.encode()
        except UnicodeEncodeError:
            return f"key {key!r}: the value is not valid text (a lone surrogate)"
        if len(value) > MAX_VALUE_CHARS:
            return f"key {key!r}: the value is over {MAX_VALUE_CHARS} characters"
    if len(json.dumps(values).encode()) > MAX_VALUES_BYTES:
        return f"the values are over {MAX_VALUES_BYTES} bytes"
    return ""


class Secret(models.Model):
    """A named set of key → value pairs (Robocorp Vault's shape). The values are
    one Fernet token (`runs.secrets.crypto`) of their JSON; `keys` lists their
    names, so definitions are checked and admin shows what a secret holds without
    decrypting. Values are written (admin, `secret_set`), never read back; only
    the engine (at the call) and the Vault API (to a robot that names it) open
    them. A secret belongs to one workspace (its name is unique there): only
    that workspace's automations and robots refer to it or read it."""

    workspace = models.ForeignKey(
        "automations.Workspace",
        on_delete=models.PROTECT,
        related_name="secrets",
        default=default_workspace_id,
    )
    name = models.CharField(
        max_length=100,
        validators=[
            RegexValidator(
                NAME_RE,
                "Letters, digits, '_' and '-', starting with a letter or digit.",
            )
        ],
    )
    description = models.TextField(blank=True)
    keys = models.JSONField(default=list, editable=False)
    ciphertext = models.TextField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        app_label = "runs"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"], name="secret_workspace_name_unique"
            )
        ]

    def __str__(self):
        return self.name

    def set_values(self, values: dict) -> None:
        problem = values_problem(values)
        if problem:
            raise ValidationError(problem)
        self.keys = sorted(values)
        self.ciphertext = crypto.encrypt(json.dumps(values, sort_keys=True))
        self.updated_at = timezone.now()

    def get_values(self) -> dict:
        """The decrypted values: for the engine and the Vault API only."""
        return json.loads(crypto.decrypt(self.ciphertext))
