"""Work item files get a SHA-256 digest, a random per-file token (signed download
URLs name it) and the step run that uploaded them.

The token is added empty, filled with one random value per existing row, then made
required with its default: an AddField default would give every existing row the
same token. Existing rows get their digest from the stored file when it can be
read (left blank otherwise)."""

import hashlib
import secrets

import django.db.models.deletion
from django.db import migrations, models

import runs.files


def fill(apps, schema_editor):
    WorkItemFile = apps.get_model("runs", "WorkItemFile")
    for row in WorkItemFile.objects.filter(token="").iterator():
        digest = ""
        try:
            with row.file.open("rb") as stored:
                sha = hashlib.sha256()
                for chunk in iter(lambda: stored.read(1 << 20), b""):
                    sha.update(chunk)
                digest = sha.hexdigest()
        except (OSError, ValueError):
            pass  # a missing file: no digest, the row keeps working
        WorkItemFile.objects.filter(pk=row.pk).update(
            token=secrets.token_urlsafe(32), sha256=digest
        )


class Migration(migrations.Migration):
    dependencies = [("runs", "0013_run_sla_breach")]

    operations = [
        migrations.AddField(
            model_name="workitemfile",
            name="sha256",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="workitemfile",
            name="step_run",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="files",
                to="runs.steprun",
            ),
        ),
        migrations.AddField(
            model_name="workitemfile",
            name="token",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="workitemfile",
            name="token",
            field=models.CharField(
                default=runs.files.work_item_file_token, editable=False, max_length=64
            ),
        ),
    ]
