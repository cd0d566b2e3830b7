"""Workspaces (issue 15): every automation and subject belongs to one.

What exists goes into `default`, and the members of the role groups get the same
role there (the groups stay tenant-wide roles as well).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import automations.models

ROLE_OF_GROUP = {
    "Viewer": "viewer",
    "Operator": "operator",
    "Approver": "approver",
    "Author": "author",
}


def into_default(apps, schema_editor):
    Workspace = apps.get_model("automations", "Workspace")
    Membership = apps.get_model("automations", "Membership")
    Group = apps.get_model("auth", "Group")
    default, _ = Workspace.objects.get_or_create(
        slug="default", defaults={"name": "Default"}
    )
    apps.get_model("automations", "Automation").objects.update(workspace=default)
    apps.get_model("automations", "Subject").objects.update(workspace=default)
    for group in Group.objects.filter(name__in=list(ROLE_OF_GROUP)):
        Membership.objects.bulk_create(
            [
                Membership(workspace=default, user=user, role=ROLE_OF_GROUP[group.name])
                for user in group.user_set.all()
            ],
            ignore_conflicts=True,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0005_step_result_url"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Membership",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                (
                    "role",
                    models.CharField(
                        choices=[
                            ("viewer", "Viewer"),
                            ("operator", "Operator"),
                            ("approver", "Approver"),
                            ("author", "Author"),
                        ],
                        max_length=20,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["workspace", "user", "role"],
            },
        ),
        migrations.CreateModel(
            name="Workspace",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("slug", models.SlugField(max_length=100, unique=True)),
                ("name", models.CharField(max_length=200)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["slug"],
            },
        ),
        migrations.RemoveConstraint(
            model_name="subject",
            name="subject_kind_reference_unique",
        ),
        migrations.RemoveIndex(
            model_name="subject",
            name="subject_kind_due",
        ),
        migrations.AddField(
            model_name="membership",
            name="user",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="workspace_memberships",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="membership",
            name="workspace",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="memberships",
                to="automations.workspace",
            ),
        ),
        migrations.AddField(
            model_name="automation",
            name="workspace",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="automations",
                to="automations.workspace",
            ),
        ),
        migrations.AddField(
            model_name="subject",
            name="workspace",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="subjects",
                to="automations.workspace",
            ),
        ),
        migrations.RunPython(into_default, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="automation",
            name="workspace",
            field=models.ForeignKey(
                default=automations.models.default_workspace_id,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="automations",
                to="automations.workspace",
            ),
        ),
        migrations.AlterField(
            model_name="subject",
            name="workspace",
            field=models.ForeignKey(
                default=automations.models.default_workspace_id,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="subjects",
                to="automations.workspace",
            ),
        ),
        migrations.AddIndex(
            model_name="subject",
            index=models.Index(
                fields=["workspace", "kind", "status", "due_on"],
                name="subject_ws_kind_due",
            ),
        ),
        migrations.AddConstraint(
            model_name="subject",
            constraint=models.UniqueConstraint(
                fields=("workspace", "kind", "reference"),
                name="subject_ws_kind_reference_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="membership",
            constraint=models.UniqueConstraint(
                fields=("workspace", "user", "role"), name="membership_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="membership",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("role__in", ["viewer", "operator", "approver", "author"])
                ),
                name="membership_role_valid",
            ),
        ),
    ]
