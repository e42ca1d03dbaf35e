from django.db import migrations


def add_builtin(apps, schema_editor):
    from pollen.zoo.builtin import BUILTIN_ENTRIES

    ZooEntry = apps.get_model("zoo", "ZooEntry")
    for entry in BUILTIN_ENTRIES:
        ZooEntry.objects.update_or_create(slug=entry["slug"], defaults=entry)


class Migration(migrations.Migration):
    dependencies = [("zoo", "0001_initial")]
    operations = [migrations.RunPython(add_builtin, migrations.RunPython.noop)]
