from django.contrib import admin

from pollen.zoo.models import ZooEntry


@admin.register(ZooEntry)
class ZooEntryAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "architecture", "source", "recommended", "enabled"]
    list_filter = ["source", "architecture", "enabled"]
    readonly_fields = ["weights_sha256", "weights_key"]
