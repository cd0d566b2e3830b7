"""The Approver group (issue 15): decides on items awaiting input, nothing else.

Like the groups of 0002 it is a tenant-wide role; the workspace role `approver`
(automations.Membership) means its permissions in one workspace only.
"""

from django.db import migrations

VIEW = [
    "runs.view_run",
    "runs.view_steprun",
    "runs.view_workitem",
    "runs.view_runitem",
    "runs.view_auditevent",
    "automations.view_automation",
    "automations.view_automationversion",
    "automations.view_step",
    "automations.view_trigger",
]
GROUPS = {"Approver": VIEW + ["runs.approve_run"]}


def create_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.add(
                Permission.objects.get(
                    content_type__app_label=app_label, codename=codename
                )
            )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(GROUPS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0019_step_run_files"),
        ("automations", "0006_workspaces"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
