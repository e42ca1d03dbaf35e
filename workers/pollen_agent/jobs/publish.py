"""Copy a trained model from the site's storage into the hub's model store (presigned PUTs).

The weights are checked against the checksum the hub recorded at training time before they
leave the site; the hub re-reads the copy and checks it again before publishing.
"""

from __future__ import annotations

import hashlib
import json

from pollen_agent.errors import UserError
from pollen_agent.jobs.model_source import put_presigned
from pollen_agent.ml.manifest import MANIFEST_NAME, WEIGHTS_NAME
from pollen_agent.storage.base import Storage
from pollen_contracts.reports import PublicationResult
from pollen_contracts.specs import PublicationSpec


def run_publication(*, spec: PublicationSpec, storage: Storage) -> PublicationResult:
    prefix = spec.storage_key.rstrip("/")
    weights = storage.get_bytes(f"{prefix}/{WEIGHTS_NAME}")
    manifest = storage.get_bytes(f"{prefix}/{MANIFEST_NAME}")
    expected = spec.weights_sha256
    if hashlib.sha256(weights).hexdigest() != expected:
        raise UserError(
            "The model's weights in site storage no longer match the checksum recorded when it was "
            "trained. They were not published.",
            code="checksum_mismatch",
        )
    try:
        described = json.loads(manifest).get("weights_sha256")
    except (ValueError, AttributeError):
        described = None
    if described != expected:
        raise UserError(
            "The model's manifest does not describe its weights; the model folder is damaged.",
            code="model_invalid",
        )
    put_presigned(spec.uploads.manifest, manifest, what="manifest")
    put_presigned(spec.uploads.weights, weights, what="weights file")
    return PublicationResult(
        weights_sha256=expected,
        manifest_sha256=hashlib.sha256(manifest).hexdigest(),
        weights_bytes=len(weights),
    )
