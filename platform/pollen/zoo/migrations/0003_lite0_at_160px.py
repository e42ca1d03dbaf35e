"""EfficientNet-Lite0 entries train at 160 px instead of 128 px (docs/training-recipe.md).

Only the two built-in entries are touched, and only while they still have the old size, so an
administrator's own choice stands. Models already trained keep the size in their manifest.
"""

from django.db import migrations

SLUGS = ("efficientnet-lite0-imagenet", "efficientnet-lite0-random")


def to_160(apps, schema_editor):
    ZooEntry = apps.get_model("zoo", "ZooEntry")
    ZooEntry.objects.filter(slug__in=SLUGS, input_size=128).update(input_size=160)


def to_128(apps, schema_editor):
    ZooEntry = apps.get_model("zoo", "ZooEntry")
    ZooEntry.objects.filter(slug__in=SLUGS, input_size=160).update(input_size=128)


class Migration(migrations.Migration):
    dependencies = [("zoo", "0002_builtin_entries")]
    operations = [migrations.RunPython(to_160, to_128)]
