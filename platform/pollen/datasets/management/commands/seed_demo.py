"""``manage.py seed_demo``: two sites, an admin and a clinician at each, one dataset, an agent config."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from pollen.accounts.models import Membership, Site
from pollen.accounts.services import membership_add, site_create, token_create
from pollen.core.dispatch import send_on_commit
from pollen.datasets.demo import demo_source
from pollen.datasets.models import Dataset, Image
from pollen.datasets.positive_class import default_positive_class
from pollen.datasets.splits import split_for
from pollen.zoo.builtin import ensure_builtin_entries
from pollen_contracts import queues, tasks

SITES = [("st-anne", "St Anne's Hospital"), ("borough", "Borough General")]
PEOPLE = [
    ("anne-admin", "st-anne", "admin"),
    ("anne-clinician", "st-anne", "clinician"),
    ("bert-admin", "borough", "admin"),
    ("bert-clinician", "borough", "clinician"),
]


class Command(BaseCommand):
    help = "Seed the embedded demo (idempotent) and write the agent config for every demo site."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--password", default=None, help="Password for the demo accounts (default: random)"
        )
        parser.add_argument("--agent-config", default=str(Path(settings.VAR_DIR) / "agent.json"))

    def handle(self, *args: Any, **opts: Any) -> None:
        ensure_builtin_entries()
        password = opts["password"] or f"pollen-{secrets.token_hex(4)}"
        sites = {
            slug: Site.objects.filter(slug=slug).first() or site_create(slug=slug, name=name)
            for slug, name in SITES
        }
        for username, slug, role in PEOPLE:
            membership = Membership.objects.filter(
                user__username=username, site=sites[slug]
            ).first()
            if membership is None:
                membership_add(
                    caller=None, site=sites[slug], username=username, role=role, password=password
                )
            else:
                membership.user.set_password(password)
                membership.user.save(update_fields=["password"])
        self._write_agent_config(Path(opts["agent_config"]), sites)
        self._seed_dataset(sites["st-anne"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready. Sign in with any of these (password for all: {password}):"
            )
        )
        for username, slug, role in PEOPLE:
            self.stdout.write(f"  {username:16} {role:10} at {dict(SITES)[slug]}")

    def _write_agent_config(self, path: Path, sites: dict[str, Site]) -> None:
        """One agent for every demo site (the embedded default), each with its own storage folder."""
        entries = []
        for slug, site in sites.items():
            # Re-seeding rotates the embedded agent's tokens.
            site.tokens.filter(name="embedded agent", revoked_at__isnull=True).update(
                revoked_at=timezone.now()
            )
            _, plaintext = token_create(caller=None, site=site, name="embedded agent", kind="agent")
            entries.append({"slug": slug, "token": plaintext, "storage": _fs_storage(slug)})
        config = {
            "hub_url": settings.PUBLIC_URL,
            "broker_url": settings.CELERY_BROKER_URL,
            "result_backend": settings.CELERY_RESULT_BACKEND,
            "work_dir": str(Path(settings.VAR_DIR) / "agent-work"),
            "sites": entries,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        self.stdout.write(f"Agent config written to {path}")

    def _seed_dataset(self, site: Site) -> None:
        if Dataset.objects.filter(site=site).exists():
            return
        source, labels, images = demo_source()
        root = Path(settings.LOCAL_STORAGE_ROOT) / site.slug
        with transaction.atomic():
            dataset = Dataset.objects.create(
                site=site,
                name="Breast ultrasound (demo)",
                label_names=labels,
                positive_class=default_positive_class(labels),
                modality="ultrasound",
                description=f"Demo data: {source}.",
                split_seed=1234,
            )
            rows = []
            for image in images:
                key = f"datasets/{dataset.pk}/images/{uuid.uuid4().hex}.png"
                path = root / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(image.png)
                rows.append(
                    Image(
                        dataset=dataset,
                        filename=image.filename,
                        storage_key=key,
                        label=image.label,
                        patient_id=image.patient_id,
                        size_bytes=len(image.png),
                        split=split_for(
                            seed=dataset.split_seed, patient_id=image.patient_id, fallback_key=key
                        ),
                    )
                )
            created = Image.objects.bulk_create(rows, batch_size=1000)
            for start in range(0, len(created), 200):
                chunk = created[start : start + 200]
                send_on_commit(
                    tasks.INGEST_IMAGES,
                    {
                        "site": site.slug,
                        "dataset_id": dataset.pk,
                        "images": [
                            {"image_id": img.pk, "key": img.storage_key, "filename": img.filename}
                            for img in chunk
                        ],
                        "thumbnail_prefix": f"datasets/{dataset.pk}/thumbnails/",
                    },
                    queue=queues.io_queue(site.slug),
                )
        self.stdout.write(
            f"Seeded '{dataset.name}' with {len(created)} images ({source}); "
            "the site agent checks them when it starts."
        )


def _fs_storage(slug: str) -> dict[str, str]:
    """The agent signs links with the hub's key: it reads the same file rather than a copy of it."""
    storage = {
        "kind": "fs",
        "root": str(settings.LOCAL_STORAGE_ROOT),
        "base_url": settings.PUBLIC_URL,
        "site": slug,
    }
    if settings.LOCAL_STORAGE_SECRET_FILE is not None:
        storage["secret_file"] = str(settings.LOCAL_STORAGE_SECRET_FILE)
    else:
        storage["secret"] = settings.LOCAL_STORAGE_SECRET or ""
    return storage
