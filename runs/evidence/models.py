"""Signed checkpoints of ledger chain heads (imported by `runs.models`)."""

from django.db import models
from django.utils import timezone


class LedgerCheckpoint(models.Model):
    """A chain head (seq, hash) as housekeeping saw it, signed with the ledger's
    Ed25519 key (`runs.evidence.checkpoints`). Rewriting a chain together with
    its head no longer goes unnoticed: the row at `seq` must still hash to
    `hash`, and only the key's holder can sign a new one."""

    chain = models.CharField(max_length=50)
    # the run whose chain it is (none: the global chain); the checkpoints of a
    # deleted run go with its chain
    run = models.ForeignKey(
        "runs.Run",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    seq = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    key_id = models.CharField(max_length=64)  # SHA-256 of the raw public key
    signature = models.CharField(max_length=100)  # base64 Ed25519 signature

    class Meta:
        app_label = "runs"
        ordering = ["chain", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["chain", "seq", "key_id"], name="ledger_checkpoint_unique"
            ),
        ]
        indexes = [
            # housekeeping: the latest checkpoint of each run (chains that moved)
            models.Index(fields=["run", "seq"], name="ledger_checkpoint_run_seq"),
        ]

    def __str__(self):
        return f"{self.chain}@{self.seq}"
