from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
        from .signals import run_state_changed
        from .webhooks import admin as webhooks_admin  # noqa: F401  (registers)
        from .webhooks.services import on_run_state_changed

        run_state_changed.connect(
            on_run_state_changed, dispatch_uid="runs.webhooks.deliveries"
        )
