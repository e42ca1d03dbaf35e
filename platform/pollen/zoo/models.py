"""The model zoo: starting points for training (an architecture plus a source of weights)."""

from __future__ import annotations

from django.db import models


class WeightSource(models.TextChoices):
    IMAGENET = "imagenet", "ImageNet (installed with the agent)"
    RANDOM = "random", "No pre-training (random start)"
    FILE = "file", "Weights imported by an administrator"
    MODEL_VERSION = "model_version", "A model trained or shared at a site"


class ZooEntry(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    architecture = models.CharField(max_length=50)
    # What a model started from this entry does: "classification" or "segmentation".
    task = models.CharField(max_length=20, default="classification")
    source = models.CharField(max_length=20, choices=WeightSource.choices)
    description = models.TextField(blank=True)
    licence = models.TextField(blank=True)
    input_size = models.PositiveIntegerField(default=128)
    recommended = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # For imported files: where the file sits in the hub's model store, and its checksum.
    weights_key = models.CharField(max_length=512, blank=True)
    weights_sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-recommended", "name"]
        verbose_name_plural = "zoo entries"

    def __str__(self) -> str:
        return self.slug
