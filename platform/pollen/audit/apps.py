from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "pollen.audit"
    label = "audit"
