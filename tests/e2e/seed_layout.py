"""Very long names for the dashboard's layout test (e2e/04-layout); run with `manage.py shell < …`.

At St Anne's: a dataset, a finished training run, its model and a marketplace entry (this site only),
each named with the longest name the hub allows (200 characters, no space to break at), and one image
with a 255-character file name and a 100-character label. Metadata rows only: no pixels, no weights,
as nothing here is ever trained or applied; the pages only have to show the names without spilling
sideways at phone width. Idempotent.
"""

from django.utils import timezone

from pollen.accounts.models import Site
from pollen.datasets.models import Dataset, Image, ImageStatus
from pollen.marketplace.models import PublishedModel, PublishedVersion, VersionStatus, Visibility
from pollen.training.models import Job, JobStatus, ModelVersion


def long_name(stem: str, length: int) -> str:
    return (stem + "_" + "Mammography-screening-cohort-" * 20)[:length]


DATASET = long_name("LongDataset", 200)
MODEL = long_name("LongModel", 200)
LABEL = long_name("Suspicious-microcalcification", 100)
FILENAME = long_name("long-file", 251) + ".png"

site = Site.objects.get(slug="st-anne")
dataset, _ = Dataset.objects.get_or_create(
    site=site, name=DATASET, defaults={"label_names": [LABEL, "normal"], "modality": "xray"}
)
Image.objects.get_or_create(
    dataset=dataset,
    filename=FILENAME,
    defaults={
        "storage_key": f"datasets/{dataset.pk}/images/long.png",
        "label": LABEL,
        "split": "train",
        "status": ImageStatus.ACCEPTED,
        "sha256": "0" * 64,
        "width": 48,
        "height": 48,
        "upload_expires_at": None,
    },
)
job, _ = Job.objects.get_or_create(
    site=site,
    dataset=dataset,
    name=MODEL,
    defaults={"status": JobStatus.SUCCEEDED, "label_names": [LABEL, "normal"]},
)
version, _ = ModelVersion.objects.get_or_create(
    job=job,
    defaults={
        "site": site,
        "name": MODEL,
        "architecture": "small_cnn",
        "label_names": [LABEL, "normal"],
        "input_size": 64,
        "weights_sha256": "0" * 64,
        "storage_key": f"models/{job.pk}/",
    },
)
model, _ = PublishedModel.objects.get_or_create(
    site=site,
    name=MODEL,
    defaults={
        "modality": "xray",
        "architecture": "small_cnn",
        "label_names": [LABEL, "normal"],
        "visibility": Visibility.SITE,
        "intended_use": "Layout test only.",
    },
)
published, _ = PublishedVersion.objects.get_or_create(
    published_model=model,
    number=1,
    defaults={
        "model_version": version,
        "status": VersionStatus.PUBLISHED,
        "weights_key": "marketplace/long/weights.safetensors",
        "manifest_key": "marketplace/long/manifest.json",
        "weights_sha256": "0" * 64,
        "published_at": timezone.now(),
    },
)
PublishedModel.objects.filter(pk=model.pk).update(
    latest_version=published,
    labels_index=f"|{LABEL.lower()}|normal|",
    search_text=f"{MODEL} {LABEL} normal".lower(),
)
print(f"layout seed ready: dataset {dataset.pk}, job {job.pk}, model {model.pk}")
