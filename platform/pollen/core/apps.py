from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "pollen.core"
    label = "core"
