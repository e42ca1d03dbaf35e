"""Remove objects from site storage; for a dataset being deleted, then tell the hub it is done.

Every step is idempotent: a missing object is not an error, and the hub treats a repeated
``purged`` report as a no-op. So the hub may send the same request again (it does when no
report came back in time) and the agent may retry its report while the hub is down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from pollen_agent.errors import UserError
from pollen_agent.storage.base import Storage

logger = logging.getLogger(__name__)


class Reporter(Protocol):
    def post(self, path: str, payload: Any = None) -> Any: ...


def purge_objects(storage: Storage, hub: Reporter, payload: Mapping[str, Any]) -> int:
    """Delete the payload's keys and prefixes; report a dataset's purge only once all are gone.

    A ``RetryableError`` (storage or hub briefly unreachable) propagates so the task retries.
    """
    removed = 0
    for key in payload.get("keys", []):
        storage.delete(key)
        removed += 1
    for prefix in payload.get("prefixes", []):
        removed += storage.delete_prefix(prefix)
    dataset_id = payload.get("dataset_id")
    if dataset_id:
        try:
            hub.post(f"agent/datasets/{dataset_id}/purged/")
        except UserError as exc:
            # The hub no longer expects this report (the dataset is gone there): the files are
            # removed either way, and retrying could never succeed.
            logger.warning("dataset %s purged; the hub refused the report: %s", dataset_id, exc)
    return removed
