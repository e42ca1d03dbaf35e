"""A job's lease columns come from pollen.core.lease (same columns; defaults and a help text)."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0005_model_version_parent_comparison"),
    ]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="worker",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.AlterField(
            model_name="job",
            name="attempt",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Claims by different deliveries so far (each one is an attempt)",
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="last_sent_at",
            field=models.DateTimeField(blank=True, default=django.utils.timezone.now, null=True),
        ),
    ]
