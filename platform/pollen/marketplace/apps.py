from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "pollen.marketplace"
    label = "marketplace"
