"""Site storage: one interface (``base``), a filesystem and an S3 backend.

This package's ``__init__`` imports nothing, so the hub can import the
stdlib-only ``local_signing`` module without pulling in the agent.
"""
