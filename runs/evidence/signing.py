"""The ledger's Ed25519 signing key, from `RUNS_LEDGER_SIGNING_KEY`.

The setting holds a PEM private key (PKCS#8) or a base64 32-byte seed. Unset,
the key is derived from SECRET_KEY with HKDF-SHA256, so a site needs SECRET_KEY
alone to start; `check --deploy` warns (runs.W301), because whoever reads
SECRET_KEY can then sign checkpoints too.
"""

import base64
import binascii
import functools

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from runs.conf import runs_settings

from .verify import key_id


class SigningKeyError(ValueError):
    """RUNS_LEDGER_SIGNING_KEY is set but is not an Ed25519 key."""


def derived_from_secret_key(secret_key: str, salt: bytes, info: bytes) -> bytes:
    """32 bytes derived from SECRET_KEY with HKDF-SHA256 for one purpose (`salt`,
    `info`): the key of a RUNS_* key setting left unset (this one, and
    RUNS_SECRET_KEYS in runs.secrets.crypto)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(
        secret_key.encode()
    )


@functools.lru_cache(maxsize=4)
def _load(configured: str, secret_key: str) -> Ed25519PrivateKey:
    configured = configured.strip()
    if not configured:
        seed = derived_from_secret_key(
            secret_key, b"runs.ledger", b"runs ledger signing key v1"
        )
        return Ed25519PrivateKey.from_private_bytes(seed)
    if configured.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(configured.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(
                f"RUNS_LEDGER_SIGNING_KEY: not a PEM key: {exc}"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError("RUNS_LEDGER_SIGNING_KEY: the PEM key is not Ed25519")
        return key
    try:
        seed = base64.b64decode(configured, validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError(
            "RUNS_LEDGER_SIGNING_KEY: neither PEM nor base64"
        ) from None
    if len(seed) != 32:
        raise SigningKeyError(
            f"RUNS_LEDGER_SIGNING_KEY: the seed is {len(seed)} bytes, not 32"
        )
    return Ed25519PrivateKey.from_private_bytes(seed)


def signing_key() -> Ed25519PrivateKey:
    return _load(runs_settings.LEDGER_SIGNING_KEY or "", settings.SECRET_KEY)


def public_key_pem() -> bytes:
    return (
        signing_key()
        .public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def signing_key_id() -> str:
    return key_id(signing_key().public_key())


def sign(message: bytes) -> str:
    """The base64 Ed25519 signature of `message`."""
    return base64.b64encode(signing_key().sign(message)).decode()
