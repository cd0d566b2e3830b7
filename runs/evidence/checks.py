"""System checks of the evidence settings."""

from django.core.checks import Error, Warning, register

from runs.conf import runs_settings

from .signing import SigningKeyError, signing_key


@register()
def ledger_signing_key_valid(app_configs=None, **kwargs):
    try:
        signing_key()
    except SigningKeyError as exc:
        return [
            Error(
                str(exc),
                hint="Give a PEM Ed25519 private key or a base64 32-byte seed.",
                id="runs.E301",
            )
        ]
    return []


@register(deploy=True)
def ledger_signing_key_set(app_configs=None, **kwargs):
    if runs_settings.LEDGER_SIGNING_KEY:
        return []
    return [
        Warning(
            "RUNS_LEDGER_SIGNING_KEY is not set: checkpoints and evidence packs are "
            "signed with a key derived from SECRET_KEY.",
            hint='Set RUNS_LEDGER_SIGNING_KEY to a key of its own (python -c "import '
            'base64, os; print(base64.b64encode(os.urandom(32)).decode())"), so '
            "whoever reads SECRET_KEY cannot sign for the ledger.",
            id="runs.W301",
        )
    ]


@register()
def audit_actor_middleware_installed(app_configs=None, **kwargs):
    from django.conf import settings

    name = "runs.evidence.config.AuditActorMiddleware"
    if name in getattr(settings, "MIDDLEWARE", []):
        return []
    return [
        Warning(
            f"{name} is not in MIDDLEWARE: configuration changes made in admin or "
            "over the API are recorded as done by 'system'.",
            hint="Add it after AuthenticationMiddleware.",
            id="runs.W302",
        )
    ]
