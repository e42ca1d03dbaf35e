"""Export a published model to ONNX at the site, verify it against PyTorch, upload it to the hub."""

from __future__ import annotations

from pathlib import Path

from pollen_agent.jobs.model_source import load_model, put_presigned
from pollen_agent.storage.base import Storage
from pollen_contracts.reports import ExportResult
from pollen_contracts.specs import ExportSpec

ATOL = 1e-4


def run_export(*, spec: ExportSpec, storage: Storage, work: Path) -> ExportResult:
    from pollen_agent.ml.export import export_onnx

    model, manifest = load_model(spec.model.weights, storage, work)
    result = export_onnx(
        model,
        input_size=manifest.input_size,
        path=work / "model.onnx",
        in_channels=len(manifest.mean),
        atol=ATOL,
        # An outlining model reads whole images and windows of any size (multiples of 32).
        any_size=manifest.task == "segmentation",
    )
    put_presigned(spec.upload, Path(result["path"]), what="ONNX file")
    return ExportResult(
        sha256=result["sha256"],
        bytes=int(result["bytes"]),
        opset=int(result["opset"]),
        max_abs_diff=float(result["max_abs_diff"]),
        atol=float(result["atol"]),  # scaled to the outputs' size (ml.export)
    )
