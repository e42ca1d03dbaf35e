"""Payload shapes sent through the broker and over the agent API.

Only ids, keys and small settings travel: never ORM objects, never pixels.
"""

from __future__ import annotations

from typing import TypedDict


class PresignUpload(TypedDict):
    site: str
    dataset_id: int
    filenames: list[str]
    expires_in: int


class PresignedSlot(TypedDict):
    filename: str
    key: str
    url: str
    method: str
    headers: dict[str, str]


class IngestImages(TypedDict):
    site: str
    dataset_id: int
    image_ids: list[int]


class IngestResult(TypedDict, total=False):
    image_id: int
    status: str  # "accepted" | "rejected"
    code: str  # why it was rejected, stable: "duplicate", "image_too_large", ...
    reason: str
    sha256: str
    width: int
    height: int
    channels: int
    modality: str
    thumbnail_key: str
    size_bytes: int


class DeleteObjects(TypedDict):
    site: str
    keys: list[str]


class JobRef(TypedDict):
    site: str
    job_id: int


# Limits shared by both sides so the hub can explain what the agent enforces.
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
MAX_IMAGE_PIXELS = 20_000 * 20_000
MAX_FILENAME_CHARS = 255  # an image's name as the user gave it (the hub's Image.filename)
MAX_ARCHIVE_BYTES = 4 * 1024 * 1024 * 1024
PRESIGN_MAX_SECONDS = 3600
PRESIGN_DEFAULT_SECONDS = 900
