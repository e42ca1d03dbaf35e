from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "pollen.accounts"
    label = "accounts"
