"""Encryption at rest for secrets and webhook secrets: Fernet (AES-128-CBC with
HMAC-SHA256) under the keys of `RUNS_SECRET_KEYS`, newest first.

The newest key encrypts; every listed key decrypts (MultiFernet), so a new key is
put first, `manage.py secrets_reencrypt` rewrites every value under it, and the
old key is dropped after. Unset, one key is derived from SECRET_KEY with HKDF
(the helper the ledger's signing key uses); `check --deploy` warns (runs.W311),
because whoever reads SECRET_KEY can then decrypt secrets too.
"""

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

from runs.conf import runs_settings

from ..evidence.signing import derived_from_secret_key


class SecretKeyError(ValueError):
    """RUNS_SECRET_KEYS holds something that is not a Fernet key."""


class UndecryptableError(ValueError):
    """A stored value no key in RUNS_SECRET_KEYS opens (a key was dropped too
    early, or the row was written elsewhere)."""


def configured_keys() -> list[str]:
    keys = runs_settings.SECRET_KEYS
    if isinstance(keys, str):
        keys = keys.split(",")
    return [key.strip() for key in keys or [] if key and key.strip()]


@functools.lru_cache(maxsize=4)
def _multi(keys: tuple, secret_key: str) -> MultiFernet:
    if not keys:
        derived = derived_from_secret_key(
            secret_key, b"runs.secrets", b"runs secrets encryption key v1"
        )
        return MultiFernet([Fernet(base64.urlsafe_b64encode(derived))])
    fernets = []
    for index, key in enumerate(keys):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise SecretKeyError(
                f"RUNS_SECRET_KEYS: key {index + 1} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    return MultiFernet(fernets)


def fernet() -> MultiFernet:
    return _multi(tuple(configured_keys()), settings.SECRET_KEY)


def encrypt(text: str) -> str:
    return fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableError(
            "no key in RUNS_SECRET_KEYS decrypts this value"
        ) from None


def reencrypt(token: str) -> str:
    """`token` under the newest key (MultiFernet.rotate)."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableError(
            "no key in RUNS_SECRET_KEYS decrypts this value"
        ) from None


class EncryptedTextField(models.TextField):
    """A text column stored Fernet-encrypted; Python sees the plain text. Used for
    webhook secrets (signing reads `hook.secret` as before)."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def formfield(self, **kwargs):
        from django import forms

        return super().formfield(**{"widget": forms.TextInput, **kwargs})

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
