"""The Vault API as `robocorp-vault` calls it (`RobocorpVault.get_secret`), so
robots that read secrets run here unchanged.

`GET secrets-v1/workspaces/{ws}/secrets/{name}` with the query
`encryptionScheme=robocloud-vault-transit-v2&publicKey=…` and
`Authorization: Bearer RC_API_SECRET_TOKEN` (the step run's "secret" token, dead
with its step run). `publicKey` is the client's RSA public key (base64 DER
SubjectPublicKeyInfo). The answer carries the values as JSON encrypted with
AES-256-GCM under a fresh key, that key wrapped with RSA-OAEP/SHA-256:

    {"name", "description", "value": b64(ciphertext without its tag),
     "encryption": {"encryptionScheme", "encryptedAES": b64, "authTag": b64,
                    "iv": b64}}

The client decrypts with the hex digits of `iv` as the GCM nonce (its code does
`AESGCM(key).decrypt(hexlify(iv), …)`), so that is the nonce used here.

A robot reads only the secrets its step names (`"secrets": [...]` in the step's
parameters): another name is 403 whether or not it exists; a named one that is
gone is 404 (as is one of another workspace: the secret is looked up in the
run's workspace only); a token of an ended step run is 403, a forged one 401.
"""

import base64
import binascii
import json
import logging
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from ..robots.services import RobotSession
from ..robots.views import RobotTokenAuthentication, RobotView
from .models import Secret
from .references import named_secrets

log = logging.getLogger("runs.secrets")

SCHEME = "robocloud-vault-transit-v2"
MAX_PUBLIC_KEY_CHARS = 4096  # base64 DER of an 8192-bit key is about 1,400
RSA_BITS = (2048, 8192)


class SecretTokenAuthentication(RobotTokenAuthentication):
    scope = "secret"


def client_public_key(encoded: str) -> rsa.RSAPublicKey:
    """The client's RSA key from `publicKey`, or a 400 naming what is wrong."""
    if not encoded or len(encoded) > MAX_PUBLIC_KEY_CHARS:
        raise exceptions.ValidationError(
            {"publicKey": f"required, base64 DER, at most {MAX_PUBLIC_KEY_CHARS} chars"}
        )
    try:
        key = serialization.load_der_public_key(
            base64.b64decode(encoded, validate=True)
        )
    except (binascii.Error, ValueError, TypeError):
        raise exceptions.ValidationError(
            {"publicKey": "not a base64 DER SubjectPublicKeyInfo"}
        ) from None
    if not isinstance(key, rsa.RSAPublicKey) or not (
        RSA_BITS[0] <= key.key_size <= RSA_BITS[1]
    ):
        raise exceptions.ValidationError(
            {"publicKey": f"must be an RSA key of {RSA_BITS[0]} to {RSA_BITS[1]} bits"}
        )
    return key


def transit_encrypt(values: dict, public_key: rsa.RSAPublicKey) -> tuple[str, dict]:
    """(value, encryption) of the answer: `values` under a fresh AES-256-GCM key
    wrapped for `public_key`."""
    aes_key = AESGCM.generate_key(bit_length=256)
    iv = os.urandom(12)
    sealed = AESGCM(aes_key).encrypt(
        binascii.hexlify(iv), json.dumps(values).encode(), b""
    )
    ciphertext, tag = sealed[:-16], sealed[-16:]
    wrapped = public_key.encrypt(
        aes_key,
        padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA256()),
            algorithm=hashes.SHA256(),
            label=None,
        ),
    )
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return b64(ciphertext), {
        "encryptionScheme": SCHEME,
        "encryptedAES": b64(wrapped),
        "authTag": b64(tag),
        "iv": b64(iv),
    }


@extend_schema(exclude=True)
class SecretView(RobotView):
    authentication_classes = [SecretTokenAuthentication]

    def get(self, request, name, **kwargs):
        session: RobotSession = request.auth
        step = session.step_run.step
        if name not in named_secrets(step.parameters):
            raise exceptions.PermissionDenied(
                f"step {step.name} does not name the secret {name!r}",
                code="secret_not_named",
            )
        scheme = request.query_params.get("encryptionScheme", "")
        if scheme != SCHEME:
            raise exceptions.ValidationError(
                {"encryptionScheme": f"must be {SCHEME}, got {scheme[:60]!r}"}
            )
        public_key = client_public_key(request.query_params.get("publicKey", ""))
        # the run's workspace only (RobotView checked the path's `{ws}` is its
        # slug): a same-named secret of another workspace is never served
        secret = Secret.objects.filter(
            workspace_id=session.run.automation.workspace_id, name=name
        ).first()
        if secret is None:
            raise exceptions.NotFound(f"no secret {name!r}")
        value, encryption = transit_encrypt(secret.get_values(), public_key)
        log.info("step run %s read secret %s", session.step_run.pk, name)
        return Response(
            {
                "name": secret.name,
                "description": secret.description,
                "value": value,
                "encryption": encryption,
            }
        )
