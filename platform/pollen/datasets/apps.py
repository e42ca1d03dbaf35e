from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "pollen.datasets"
    label = "datasets"
