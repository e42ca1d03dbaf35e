"""How hub rows name their files in a site's storage."""

from __future__ import annotations

import uuid

from django.db import models


class SiteStorageNamed(models.Model):
    """A row whose files in site storage are named by its id and a uid.

    Ids alone are not enough: a site's storage outlives a hub database (a restore, a second hub,
    a test run), and a new job 1 must never resume, or overwrite, the files of an earlier job 1.
    """

    uid = models.UUIDField(default=uuid.uuid4, null=True, unique=True, editable=False)

    class Meta:
        abstract = True

    @property
    def storage_name(self) -> str:
        """The folder name of this row's files in site storage, unique across hub databases."""
        # Rows made before the uid existed keep the names their files already have.
        return f"{self.pk}-{self.uid.hex[:12]}" if self.uid else str(self.pk)
