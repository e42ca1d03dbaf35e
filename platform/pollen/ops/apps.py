from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "pollen.ops"
    label = "ops"
