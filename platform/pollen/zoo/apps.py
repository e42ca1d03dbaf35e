from django.apps import AppConfig


class ZooConfig(AppConfig):
    name = "pollen.zoo"
    label = "zoo"
