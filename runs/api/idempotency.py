"""Idempotency keys for triggers, after Stripe and draft-ietf-httpapi-idempotency-key.

The key is claimed by INSERT (unique user, automation, key) in its own committed
transaction before any work, so among concurrent requests with one key exactly one
claims it. The claimant creates the run and records it on the key; a request that
finds the key

- with the same body and a run: gets that run again (a replay);
- with the same body and no run yet: 409, the first request is still in flight;
- with another body: 422.

A request that fails (invalid inputs, automation not runnable) releases its claim, so
the client may fix it and retry with the same key. A claim left behind by a crashed
process is taken over after `STALE_CLAIM_SECONDS`; a key older than
`RUNS_IDEMPOTENCY_KEY_TTL_SECONDS` is forgotten and starts a new run.
"""

import hashlib
import json
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from runs.conf import runs_settings

from ..services.errors import RunsError
from .models import IdempotencyKey

MAX_KEY_LENGTH = 255
STALE_CLAIM_SECONDS = 300


class KeyInvalid(RunsError):
    code = "invalid_idempotency_key"


class KeyInFlight(RunsError):
    code = "idempotency_key_in_flight"


class KeyReused(RunsError):
    code = "idempotency_key_reused"


@dataclass
class Claim:
    """Either a fresh claim (`key`, run to be created) or a replay (`run` set)."""

    key: IdempotencyKey
    replay: bool = False


def key_clean(raw: str) -> str:
    key = raw.strip()
    if not key:
        raise KeyInvalid("Idempotency-Key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise KeyInvalid(f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters")
    if not key.isprintable() or not key.isascii():
        raise KeyInvalid("Idempotency-Key must be printable ASCII")
    return key


def body_hash(body) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def key_claim(*, user, automation, key: str, request_hash: str) -> Claim:
    """Claim `key` for this request, or say what the earlier request with it became."""
    for _ in range(3):
        now = timezone.now()
        try:
            with transaction.atomic():
                claimed = IdempotencyKey.objects.create(
                    user=user,
                    automation=automation,
                    key=key,
                    request_hash=request_hash,
                    created_at=now,
                    expires_at=now
                    + timezone.timedelta(
                        seconds=runs_settings.IDEMPOTENCY_KEY_TTL_SECONDS
                    ),
                )
            return Claim(key=claimed)
        except IntegrityError:
            pass
        existing = (
            IdempotencyKey.objects.filter(user=user, automation=automation, key=key)
            .select_related("run")
            .first()
        )
        if existing is None:
            continue  # released or pruned meanwhile: claim again
        stale = existing.run_id is None and existing.created_at < now - (
            timezone.timedelta(seconds=STALE_CLAIM_SECONDS)
        )
        if existing.expires_at <= now or stale:
            # forget it only if nobody else changed it meanwhile, then claim again
            IdempotencyKey.objects.filter(
                pk=existing.pk, created_at=existing.created_at, run=existing.run_id
            ).delete()
            continue
        if existing.request_hash != request_hash:
            raise KeyReused(
                "this Idempotency-Key was used with a different request body; use a "
                "new key for a new request"
            )
        if existing.run_id is None:
            raise KeyInFlight(
                "a request with this Idempotency-Key is still being handled; retry "
                "shortly"
            )
        return Claim(key=existing, replay=True)
    raise KeyInFlight("this Idempotency-Key is contended; retry shortly")


def key_complete(claim: Claim, run) -> None:
    """Record the run created under a fresh claim (inside the run's transaction)."""
    IdempotencyKey.objects.filter(pk=claim.key.pk, run__isnull=True).update(run=run)
    claim.key.run = run


def key_release(claim: Claim) -> None:
    """Forget a claim whose request failed, so the client can retry with the key."""
    IdempotencyKey.objects.filter(pk=claim.key.pk, run__isnull=True).delete()


def idempotency_keys_prune(now=None) -> int:
    """Delete expired keys (housekeeping)."""
    now = now or timezone.now()
    deleted, _ = IdempotencyKey.objects.filter(expires_at__lte=now).delete()
    return deleted
