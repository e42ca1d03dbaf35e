"""A held-out check and a site's turn in a round carry the columns of pollen.core.lease.

Expand only, so the release before keeps working on this schema: a check's ``attempts`` is
read as ``attempt`` and a participant's ``dispatched_at`` as ``last_sent_at`` (same columns);
a check's ``claimed_at`` stays, and the lease of a check in hand starts from it.
"""

from datetime import timedelta

import django.utils.timezone
from django.conf import settings
from django.db import migrations, models
from django.db.models import F

ATTEMPT_HELP = "Claims by different deliveries so far (each one is an attempt)"


def _lease_from_claim(apps, schema_editor):
    rows = apps.get_model("federation", "heldoutevaluation").objects.exclude(claimed_at=None)
    rows.filter(status__in=["queued", "running"]).update(
        lease_expires_at=F("claimed_at") + timedelta(seconds=settings.WORK_LEASE_SECONDS)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("federation", "0004_held_out_evaluation"),
    ]

    operations = [
        migrations.AlterField(
            model_name="heldoutevaluation",
            name="attempts",
            field=models.PositiveIntegerField(
                db_column="attempts", default=0, help_text=ATTEMPT_HELP
            ),
        ),
        migrations.RenameField(
            model_name="heldoutevaluation", old_name="attempts", new_name="attempt"
        ),
        migrations.AddField(
            model_name="heldoutevaluation",
            name="worker",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.AddField(
            model_name="heldoutevaluation",
            name="lease_expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="heldoutevaluation",
            name="last_sent_at",
            field=models.DateTimeField(blank=True, default=django.utils.timezone.now, null=True),
        ),
        migrations.RunPython(_lease_from_claim, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="participant",
            name="dispatched_at",
            field=models.DateTimeField(
                blank=True, db_column="dispatched_at", default=django.utils.timezone.now, null=True
            ),
        ),
        migrations.RenameField(
            model_name="participant", old_name="dispatched_at", new_name="last_sent_at"
        ),
        migrations.AlterField(
            model_name="participant",
            name="worker",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.AlterField(
            model_name="participant",
            name="attempt",
            field=models.PositiveIntegerField(default=0, help_text=ATTEMPT_HELP),
        ),
    ]
