"""Celery task names. A message carries ids only (site, kind, id); its spec comes with the claim (specs.py)."""

# io queue: answered within seconds
PRESIGN_UPLOAD = "pollen.io.presign_upload"
PRESIGN_DOWNLOAD = "pollen.io.presign_download"
INGEST_IMAGES = "pollen.io.ingest_images"
DELETE_OBJECTS = "pollen.io.delete_objects"
EXTRACT_ARCHIVE = "pollen.io.extract_archive"
PING = "pollen.io.ping"

# Model work. Names are stable (they predate the infer queue): TRAIN and FEDERATED_ROUND go on
# the gpu queue; PREDICT, EVALUATE, PUBLISH and EXPORT on the infer queue. Every agent worker
# knows every task, so a message left on the other queue by an older hub still runs.
TRAIN = "pollen.gpu.train"
PREDICT = "pollen.gpu.predict"
EVALUATE = "pollen.gpu.evaluate"
PUBLISH = "pollen.gpu.publish"
EXPORT = "pollen.gpu.export"
FEDERATED_ROUND = "pollen.gpu.federated_round"
# infer queue: a finished cross-site model (and the site's local one) on the site's held-out images
FEDERATED_HELD_OUT = "pollen.infer.federated_held_out"

IO_TASKS = frozenset(
    {PRESIGN_UPLOAD, PRESIGN_DOWNLOAD, INGEST_IMAGES, DELETE_OBJECTS, EXTRACT_ARCHIVE, PING}
)
GPU_TASKS = frozenset({TRAIN, FEDERATED_ROUND})
INFER_TASKS = frozenset({PREDICT, EVALUATE, PUBLISH, EXPORT, FEDERATED_HELD_OUT})
