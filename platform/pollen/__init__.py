"""Pollen hub: the Django web app (REST API, dashboard, admin). Never imports torch."""
