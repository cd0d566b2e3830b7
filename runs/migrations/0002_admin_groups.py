"""Admin: indexes for exact-subject search, and the Viewer / Operator / Author groups.

Viewer sees everything and exports; Operator also controls runs (stop, retry,
resolve, archive, re-run, approve, start); Author also edits, imports and publishes
automations and subjects. Each level holds the permissions of the one before.
"""

from django.db import migrations, models

VIEW = [
    "runs.view_run",
    "runs.view_steprun",
    "runs.view_workitem",
    "runs.view_runitem",
    "runs.view_auditevent",
    "runs.view_actionresult",
    "automations.view_automation",
    "automations.view_automationversion",
    "automations.view_step",
    "automations.view_trigger",
    "automations.view_subject",
    "runs.export_run",
]
OPERATE = [
    "runs.stop_run",
    "runs.retry_run",
    "runs.resolve_run",
    "runs.archive_run",
    "runs.rerun_run",
    "runs.approve_run",
    "runs.trigger_run",
]
AUTHOR = [
    f"automations.{verb}_{model}"
    for model in ("automation", "automationversion", "step", "trigger", "subject")
    for verb in ("add", "change", "delete")
]
GROUPS = {
    "Viewer": VIEW,
    "Operator": VIEW + OPERATE,
    "Author": VIEW + OPERATE + AUTHOR,
}


def create_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations (post_migrate); create
    # them now so the groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            wanted.append(
                Permission.objects.get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        group.permissions.add(*wanted)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(GROUPS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("automations", "0001_initial"),
        ("runs", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="runitem",
            # admin: run items search by exact subject
            index=models.Index(fields=["subject"], name="run_item_subject"),
        ),
        migrations.AddIndex(
            model_name="workitem",
            # admin: runs search by the exact subject of a work item
            index=models.Index(fields=["subject"], name="work_item_subject"),
        ),
        migrations.AddIndex(
            model_name="run",
            # run page: re-runs of a run (partial: rerun_of is nearly always NULL)
            index=models.Index(
                condition=models.Q(rerun_of__isnull=False),
                fields=["rerun_of"],
                name="run_reruns",
            ),
        ),
        migrations.RunPython(create_groups, remove_groups),
    ]
