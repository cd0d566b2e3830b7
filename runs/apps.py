from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
        from .mail import admin as mail_admin  # noqa: F401  (registers its admin)
        from .mail import checks as mail_checks  # noqa: F401  (its system checks)
        from .mail import receivers  # noqa: F401  (run notifications)
