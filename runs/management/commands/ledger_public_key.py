from django.core.management.base import BaseCommand

from runs.evidence.signing import public_key_pem, signing_key_id


class Command(BaseCommand):
    help = (
        "Print the public half of the ledger's Ed25519 signing key (PEM), which "
        "verifies checkpoints and evidence packs; --fingerprint prints its SHA-256."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--fingerprint",
            action="store_true",
            help="print the key's fingerprint (SHA-256 of the raw public key)",
        )

    def handle(self, *args, fingerprint=False, **options):
        if fingerprint:
            self.stdout.write(signing_key_id())
        else:
            self.stdout.write(public_key_pem().decode(), ending="")
