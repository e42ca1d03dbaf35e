from django.db import migrations


def add_builtin(apps, schema_editor):
    from pollen.zoo.builtin import BUILTIN_ENTRIES

    ZooEntry = apps.get_model("zoo", "ZooEntry")
    # Only the columns this migration's table has: later migrations add (and fill) the rest.
    columns = {field.name for field in ZooEntry._meta.get_fields()}
    for entry in BUILTIN_ENTRIES:
        known = {key: value for key, value in entry.items() if key in columns}
        ZooEntry.objects.update_or_create(slug=entry["slug"], defaults=known)


class Migration(migrations.Migration):
    dependencies = [("zoo", "0001_initial")]
    operations = [migrations.RunPython(add_builtin, migrations.RunPython.noop)]
