"""Datasets record the finding a model looks for; existing two-label datasets get the default."""

from django.db import migrations, models


def fill_default(apps, schema_editor):  # type: ignore[no-untyped-def]
    from pollen.datasets.positive_class import default_positive_class

    Dataset = apps.get_model("datasets", "Dataset")
    for dataset in Dataset.objects.all().only("id", "label_names"):
        labels = list(dataset.label_names or [])
        if len(labels) == 2:
            dataset.positive_class = default_positive_class(labels)
            dataset.save(update_fields=["positive_class"])


class Migration(migrations.Migration):
    dependencies = [("datasets", "0004_image_upload_expiry")]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="positive_class",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.RunPython(fill_default, migrations.RunPython.noop),
    ]
