from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "pollen.training"
    label = "training"
