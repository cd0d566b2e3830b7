from importlib import import_module

from django.apps import AppConfig

from runs.conf import runs_settings


class AutomationsConfig(AppConfig):
    name = "automations"
    verbose_name = "Automations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Actions, subject sources and predicates register themselves on import, in
        # the web process and in every worker alike.
        for module in [
            "automations.actions.builtins",
            "automations.demo",
            *runs_settings.ACTION_MODULES,
        ]:
            import_module(module)
