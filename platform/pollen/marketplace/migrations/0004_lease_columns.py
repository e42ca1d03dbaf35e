"""Marketplace work carries the columns of pollen.core.lease, added alongside the old ones.

``attempts`` is read as ``attempt`` (same column); ``lease_expires_at``, ``worker`` and
``last_sent_at`` are new. ``claimed_at`` stays (the release before reads it) and the lease of
work in hand starts from it. Expand only: the release before keeps working on this schema.
"""

from datetime import timedelta

import django.utils.timezone
from django.conf import settings
from django.db import migrations, models
from django.db.models import F

MODELS = ("prediction", "siteevaluation", "modelexport", "publishedversion")
ATTEMPT_HELP = "Claims by different deliveries so far (each one is an attempt)"


def _lease_from_claim(apps, schema_editor):
    lease = timedelta(seconds=settings.WORK_LEASE_SECONDS)
    for name in MODELS:
        rows = apps.get_model("marketplace", name).objects.exclude(claimed_at=None)
        rows = rows.filter(status__in=["queued", "running", "pending"])  # work in hand only
        rows.update(lease_expires_at=F("claimed_at") + lease)


def _columns(name):
    return [
        migrations.AlterField(
            model_name=name,
            name="attempts",
            field=models.PositiveSmallIntegerField(
                db_column="attempts", default=0, help_text=ATTEMPT_HELP
            ),
        ),
        migrations.RenameField(model_name=name, old_name="attempts", new_name="attempt"),
        migrations.AddField(
            model_name=name,
            name="worker",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.AddField(
            model_name=name,
            name="lease_expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name=name,
            name="last_sent_at",
            field=models.DateTimeField(blank=True, default=django.utils.timezone.now, null=True),
        ),
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("marketplace", "0003_work_attempts"),
    ]

    operations = [
        *[operation for name in MODELS for operation in _columns(name)],
        migrations.RunPython(_lease_from_claim, migrations.RunPython.noop),
    ]
