"""Where a model version's weights are, told to an agent as a weights spec.

Most versions sit in their site's storage (the agent of that site reads them directly). Rounds of
cross-site training sit in the hub's model store (``storage_key`` starts with ``hub:``): agents
fetch those through presigned URLs and check both files' checksums before loading.
"""

from __future__ import annotations

from typing import Any

from pollen.core.model_store import model_store, sha256_bytes
from pollen.training.models import ModelVersion

HUB_PREFIX = "hub:"
FETCH_SECONDS = 3600


def in_hub_store(version: ModelVersion) -> bool:
    return version.storage_key.startswith(HUB_PREFIX)


def hub_folder(version: ModelVersion) -> str:
    return version.storage_key[len(HUB_PREFIX) :].rstrip("/")


def model_version_weights(version: ModelVersion) -> dict[str, Any]:
    if not in_hub_store(version):
        return {"kind": "site_model", "key": version.storage_key, "sha256": version.weights_sha256}
    store, folder = model_store(), hub_folder(version)
    manifest = store.get_bytes(f"{folder}/manifest.json")
    return {
        "kind": "published",
        "url": store.presign_get(f"{folder}/weights.safetensors", expires_in=FETCH_SECONDS),
        "sha256": version.weights_sha256,
        "manifest_url": store.presign_get(f"{folder}/manifest.json", expires_in=FETCH_SECONDS),
        "manifest_sha256": sha256_bytes(manifest),
    }
