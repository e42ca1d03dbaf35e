from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "pollen.accounts"
    label = "accounts"

    def ready(self) -> None:
        from pollen.accounts import schema  # noqa: F401 - registers the OpenAPI auth extension
