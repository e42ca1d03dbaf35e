"""Jobs and model versions record the finding the model looks for.

Models trained before it was recorded measured sensitivity for the second of their two labels,
so that is what their rows say (true to the numbers already stored).
"""

from django.db import migrations, models


def fill_measured(apps, schema_editor):  # type: ignore[no-untyped-def]
    for name in ("Job", "ModelVersion"):
        model = apps.get_model("training", name)
        for row in model.objects.all().only("id", "label_names"):
            labels = list(row.label_names or [])
            if len(labels) == 2:
                row.positive_class = labels[1]
                row.save(update_fields=["positive_class"])


class Migration(migrations.Migration):
    dependencies = [("training", "0003_job_uid")]

    operations = [
        migrations.AddField(
            model_name="job",
            name="positive_class",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="positive_class",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.RunPython(fill_measured, migrations.RunPython.noop),
    ]
