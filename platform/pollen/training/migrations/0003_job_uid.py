"""A uid names each new job's files in site storage: ids repeat across hub databases.

Expand-only, so the running release keeps working during the rollout: the column is nullable and
existing rows stay NULL (their files keep the id-only names, so a job running during the upgrade
still resumes from its checkpoint). The default only applies to rows made from now on.
"""

import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0002_job_last_sent_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="uid",
            field=models.UUIDField(editable=False, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="job",
            name="uid",
            field=models.UUIDField(default=uuid.uuid4, editable=False, null=True, unique=True),
        ),
    ]
