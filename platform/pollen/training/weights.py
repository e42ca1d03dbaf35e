"""The one place the hub says where a model's weights are: a ``WeightsSpec`` for an agent.

Most versions sit in their site's storage (the agent of that site reads them directly). Rounds of
cross-site training sit in the hub's model store (``storage_key`` starts with ``hub:``), as do
published copies: agents fetch those through presigned URLs and check every file's checksum
before loading. A zoo entry is built at the site (ImageNet, random) or fetched as an imported file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pollen.core.model_store import model_store, sha256_bytes
from pollen.training.models import ModelVersion
from pollen.zoo.models import WeightSource, ZooEntry
from pollen_contracts.manifest import MANIFEST_NAME, WEIGHTS_NAME
from pollen_contracts.weights import ModelRef, WeightsSpec

if TYPE_CHECKING:
    from pollen.marketplace.models import PublishedVersion

HUB_PREFIX = "hub:"
FETCH_SECONDS = 3600


def in_hub_store(version: ModelVersion) -> bool:
    return version.storage_key.startswith(HUB_PREFIX)


def hub_folder(version: ModelVersion) -> str:
    return version.storage_key[len(HUB_PREFIX) :].rstrip("/")


def entry_weights(entry: ZooEntry) -> WeightsSpec:
    """A zoo entry: built at the site (ImageNet, random), or an imported file fetched by URL."""
    if entry.source != WeightSource.FILE:
        return WeightsSpec.from_dict({"kind": entry.source})  # checks the kind
    return WeightsSpec(
        kind="file",
        url=model_store().presign_get(entry.weights_key, expires_in=FETCH_SECONDS),
        sha256=entry.weights_sha256,
        suffix=entry.weights_key.rsplit(".", 1)[-1],
    )


def model_version_weights(version: ModelVersion) -> WeightsSpec:
    """A model version: a folder in its site's storage, or a cross-site round in the hub's store."""
    if not in_hub_store(version):
        return WeightsSpec(
            kind="site_model", key=version.storage_key, sha256=version.weights_sha256
        )
    store, folder = model_store(), hub_folder(version)
    manifest = store.get_bytes(f"{folder}/{MANIFEST_NAME}")
    return WeightsSpec(
        kind="published",
        url=store.presign_get(f"{folder}/{WEIGHTS_NAME}", expires_in=FETCH_SECONDS),
        sha256=version.weights_sha256,
        manifest_url=store.presign_get(f"{folder}/{MANIFEST_NAME}", expires_in=FETCH_SECONDS),
        manifest_sha256=sha256_bytes(manifest),
    )


def published_weights(version: PublishedVersion, *, expires_in: int = FETCH_SECONDS) -> WeightsSpec:
    """A marketplace copy in the hub's model store (verified by sha256 before use)."""
    store = model_store()
    return WeightsSpec(
        kind="published",
        url=store.presign_get(version.weights_key, expires_in=expires_in),
        sha256=version.weights_sha256,
        manifest_url=store.presign_get(version.manifest_key, expires_in=expires_in),
        manifest_sha256=version.manifest_sha256,
    )


def hub_file_weights(key: str, sha256: str, *, expires_in: int = FETCH_SECONDS) -> WeightsSpec:
    """A bare weights file in the hub's model store (a cross-site round's input or update)."""
    return WeightsSpec(
        kind="hub_file",
        url=model_store().presign_get(key, expires_in=expires_in),
        sha256=sha256,
    )


def model_ref(
    version: ModelVersion, *, published: PublishedVersion | None = None, site_id: int
) -> ModelRef:
    """A trained model to run at ``site_id``: its own site reads its folder; others the copy."""
    weights = (
        published_weights(published)
        if published is not None and version.site_id != site_id
        else model_version_weights(version)
    )
    return ModelRef(
        architecture=version.architecture,
        label_names=list(version.label_names),
        input_size=int(version.input_size),
        mean=[float(v) for v in version.mean],
        std=[float(v) for v in version.std],
        weights=weights,
    )
