"""Limits shared by both sides, so the hub can explain what the agent enforces."""

from __future__ import annotations

MAX_UPLOAD_BYTES = 256 * 1024 * 1024
MAX_IMAGE_PIXELS = 20_000 * 20_000
MAX_FILENAME_CHARS = 255  # an image's name as the user gave it (the hub's Image.filename)
MAX_ARCHIVE_BYTES = 4 * 1024 * 1024 * 1024
PRESIGN_MAX_SECONDS = 3600
PRESIGN_DEFAULT_SECONDS = 900
