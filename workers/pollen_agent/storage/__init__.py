"""Site storage: one interface (``base``), a filesystem and an S3 backend.

This package's ``__init__`` imports nothing, so the hub can import the
stdlib-only ``pollen_contracts.local_signing`` module (shared with the hub).
"""
