"""Secrets belong to a workspace (DESIGN "Secret", "Workspace"): what exists goes
into `default` (made as 0006 makes it), and a name is unique per workspace."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

import automations.models


def into_default(apps, schema_editor):
    Workspace = apps.get_model("automations", "Workspace")
    Secret = apps.get_model("runs", "Secret")
    if not Secret.objects.exists():
        return
    default, _ = Workspace.objects.get_or_create(
        slug="default", defaults={"name": "Default"}
    )
    Secret.objects.filter(workspace__isnull=True).update(workspace=default)


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0006_workspaces"),
        ("runs", "0020_approver_group"),
    ]

    operations = [
        migrations.AddField(
            model_name="secret",
            name="workspace",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="secrets",
                to="automations.workspace",
            ),
        ),
        migrations.RunPython(into_default, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="secret",
            name="workspace",
            field=models.ForeignKey(
                default=automations.models.default_workspace_id,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="secrets",
                to="automations.workspace",
            ),
        ),
        migrations.AlterField(
            model_name="secret",
            name="name",
            field=models.CharField(
                max_length=100,
                validators=[
                    django.core.validators.RegexValidator(
                        "^[A-Za-z0-9][A-Za-z0-9_-]*$",
                        "Letters, digits, '_' and '-', starting with a letter or "
                        "digit.",
                    )
                ],
            ),
        ),
        migrations.AddConstraint(
            model_name="secret",
            constraint=models.UniqueConstraint(
                fields=("workspace", "name"), name="secret_workspace_name_unique"
            ),
        ),
    ]
