from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers the system checks)
        from .evidence import checks as evidence_checks  # noqa: F401
        from .evidence import config as evidence_config

        evidence_config.connect()  # configuration changes → audit events

        post_migrate.connect(_schedule_housekeeping, sender=self)
        from .mail import admin as mail_admin  # noqa: F401  (registers its admin)
        from .mail import checks as mail_checks  # noqa: F401  (its system checks)
        from .secrets import admin as secrets_admin  # noqa: F401  (registers)
        from .secrets import checks as secrets_checks  # noqa: F401  (its checks)
        from .webhooks import admin as webhooks_admin  # noqa: F401  (registers)


def _schedule_housekeeping(**kwargs):
    """After migrate, make sure the housekeeping schedule exists in django-q2."""
    from .engine.housekeeping import housekeeping_schedule_sync

    housekeeping_schedule_sync()
