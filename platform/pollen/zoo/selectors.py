from __future__ import annotations

from django.db.models import QuerySet

from pollen.core.errors import NotFound
from pollen.zoo.models import ZooEntry


def zoo_entry_list() -> QuerySet[ZooEntry]:
    """Zoo entries are shared by the consortium: architectures and public weights, never site data."""
    return ZooEntry.objects.filter(enabled=True)


def zoo_entry_get(*, entry_id: int) -> ZooEntry:
    entry = zoo_entry_list().filter(pk=entry_id).first()
    if entry is None:
        raise NotFound(
            "There is no such starting point in the model zoo.", code="zoo_entry_not_found"
        )
    return entry
