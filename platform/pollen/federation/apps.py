from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "pollen.federation"
    label = "federation"
