"""Where a model's weights are, as told to an agent: one type for every kind of work.

- ``imagenet`` / ``random``: built at the site (pip-installed ImageNet weights, or none).
- ``file``: a weights file imported into the model zoo, fetched by a presigned ``url``.
- ``site_model``: a model folder in the site's own storage under ``key``.
- ``published``: a model folder in the hub's model store: the weights at ``url`` and the
  manifest at ``manifest_url``, each verified by its checksum before a byte is parsed.
- ``hub_file``: a bare weights file in the hub's model store (a cross-site round's input or a
  site's own round update), fetched by ``url`` and verified by ``sha256``.

The hub builds these in one place (``pollen.training.weights``); the agent reads them in one place
(``pollen_agent.jobs.model_source``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pollen_contracts.contract import Contract, require

WeightsKind = Literal["imagenet", "random", "file", "site_model", "published", "hub_file"]
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def require_sha256(value: str, path: str, *, optional: bool = False) -> None:
    """For ``validate()``: ``value`` is a sha256 checksum in lower-case hex (or, if optional, empty)."""
    require(
        (optional and not value) or bool(SHA256_RE.match(value)), path, "is not a sha256 checksum"
    )


# Which fields each kind needs, so a spec missing one fails where it is built.
_NEEDS: dict[str, tuple[str, ...]] = {
    "imagenet": (),
    "random": (),
    "file": ("url", "sha256"),
    "site_model": ("key", "sha256"),
    "published": ("url", "sha256", "manifest_url", "manifest_sha256"),
    "hub_file": ("url", "sha256"),
}


@dataclass(frozen=True)
class WeightsSpec(Contract):
    kind: WeightsKind
    url: str = ""
    key: str = ""
    sha256: str = ""
    # The imported file's type (``safetensors`` or ``pt``), for ``file`` only.
    suffix: str = ""
    manifest_url: str = ""
    manifest_sha256: str = ""

    def validate(self) -> None:
        for name in _NEEDS[self.kind]:
            require(bool(getattr(self, name)), name, f"is required for {self.kind} weights")
        for name in ("sha256", "manifest_sha256"):
            require_sha256(getattr(self, name), name, optional=True)


@dataclass(frozen=True)
class UploadLink(Contract):
    """A presigned request the agent sends a file with (to the hub's model store)."""

    url: str
    method: str = "PUT"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRef(Contract):
    """A trained model to run: its shape, its preprocessing, and where its weights are."""

    architecture: str
    label_names: list[str]
    input_size: int
    mean: list[float]
    std: list[float]
    weights: WeightsSpec

    def validate(self) -> None:
        require(len(self.label_names) >= 2, "label_names", "needs at least two labels")
        require(self.input_size > 0, "input_size", "must be positive")
        require(
            self.weights.kind in ("site_model", "published"),
            "weights.kind",
            "a trained model is a site_model or published model folder",
        )
