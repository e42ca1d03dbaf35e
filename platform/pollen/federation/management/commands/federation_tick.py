"""Move cross-site jobs forward once, by hand: the clock (``manage.py clock``) does it every tick."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from pollen.federation.services import federation_tick


class Command(BaseCommand):
    help = "Advance running federated jobs (safe to run often and from several places)."

    def handle(self, *args: Any, **options: Any) -> None:
        ids = federation_tick()
        self.stdout.write(f"looked at {len(ids)} running federated job(s)")
