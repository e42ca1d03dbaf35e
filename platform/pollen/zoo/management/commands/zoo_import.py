"""Import a weights file into the model zoo: ``manage.py zoo_import FILE --architecture ... --licence ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from pollen.audit.services import audit_record
from pollen.core.model_store import model_store, sha256_bytes
from pollen.zoo.models import WeightSource, ZooEntry

ALLOWED_SUFFIXES = {".safetensors", ".pt", ".pth"}
KNOWN_ARCHITECTURES = {
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "resnet18",
    "resnet50",
    "densenet121",
    "mobilenet_v3_small",
    "small_cnn",
}


class Command(BaseCommand):
    help = "Import a weights file (safetensors preferred) as a starting point in the model zoo."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file")
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--architecture", required=True, choices=sorted(KNOWN_ARCHITECTURES))
        parser.add_argument(
            "--licence", required=True, help="The terms users of these weights must see."
        )
        parser.add_argument("--description", default="")
        parser.add_argument("--input-size", type=int, default=128)
        parser.add_argument(
            "--sha256", help="Expected checksum; the import fails if the file differs."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(opts["file"])
        if path.suffix.lower() not in ALLOWED_SUFFIXES:
            raise CommandError(
                f"Use a .safetensors, .pt or .pth file, not {path.suffix or 'no extension'}."
            )
        if not path.is_file():
            raise CommandError(f"There is no file at {path}.")
        data = path.read_bytes()
        digest = sha256_bytes(data)
        if opts.get("sha256") and opts["sha256"].lower() != digest:
            raise CommandError(
                f"The file's checksum is {digest}, not the expected {opts['sha256']}."
            )
        if ZooEntry.objects.filter(slug=opts["slug"]).exists():
            raise CommandError(f"A zoo entry '{opts['slug']}' already exists.")
        key = f"zoo/{opts['slug']}/{digest}{path.suffix.lower()}"
        model_store().put_bytes(key, data)
        with transaction.atomic():
            entry = ZooEntry.objects.create(
                slug=opts["slug"],
                name=opts["name"],
                architecture=opts["architecture"],
                source=WeightSource.FILE,
                licence=opts["licence"],
                description=opts["description"],
                input_size=opts["input_size"],
                weights_key=key,
                weights_sha256=digest,
            )
            audit_record(
                caller=None,
                action="zoo.import",
                site_id=None,
                target_type="zoo_entry",
                target_id=entry.pk,
                detail={"slug": entry.slug, "sha256": digest},
            )
        self.stdout.write(self.style.SUCCESS(f"Imported {entry.slug} (sha256 {digest})."))
