"""ONNX export, verified against PyTorch before the file is handed over.

The TorchScript-based exporter (``dynamo=False``) is used because it works offline with the
installed packages; the torch.export-based default needs ``onnxscript``. The export runs on a CPU
copy of the model in eval mode, so the caller's model is not moved or switched. The file only
appears at ``path`` once onnxruntime has reproduced PyTorch's outputs, on a batch size other than
the one exported, within ``atol``.
"""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pollen_agent.errors import UserError
from pollen_agent.ml.inference import eval_mode, output_logits

DEFAULT_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(
    model: nn.Module,
    *,
    input_size: int,
    path: str | os.PathLike[str],
    in_channels: int = 3,
    opset: int = DEFAULT_OPSET,
    atol: float = 1e-4,
    any_size: bool = False,
) -> dict[str, Any]:
    """Write ``model`` as ONNX with a dynamic batch axis and check it with onnxruntime.

    Input ``input`` is (batch, in_channels, input_size, input_size) float32, normalised as for
    PyTorch; output ``logits`` is the model's raw output. With ``any_size`` (segmentation models,
    which read windows and whole images of any size that is a multiple of 32) height and width
    are dynamic too, and the check runs at another size than the one exported. Returns ``path``,
    ``opset``, ``max_abs_diff`` (ONNX vs PyTorch on a random batch of 3), ``atol`` (the
    tolerance used: ``atol`` times the largest output, at least ``atol``), ``sha256`` and
    ``bytes``. Raises ``UserError(onnx_mismatch)`` if the outputs differ by more than that, and
    ``UserError(onnx_unsupported)`` if the architecture uses an operator ONNX cannot express.
    """
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    cpu_model = _cpu_copy(model)
    height = input_size + 32 if any_size else input_size  # a size other than the exported one
    try:
        with eval_mode(cpu_model), torch.inference_mode(False), torch.no_grad():
            dummy = torch.zeros(1, in_channels, input_size, input_size)
            _export(cpu_model, dummy, partial, opset, any_size=any_size)
            sample = torch.randn(3, in_channels, height, input_size, generator=_seeded())
            expected = output_logits(cpu_model(sample)).float().numpy()
        actual = _run_onnx(partial, sample.numpy())
        max_abs_diff = float(np.abs(actual - expected).max())
        # Float32 rounding grows with the size of the outputs: the tolerance scales with them.
        atol = atol * max(1.0, float(np.abs(expected).max()))
        if actual.shape != expected.shape or not max_abs_diff <= atol:
            raise UserError(
                f"The exported ONNX model does not reproduce this model's outputs (largest "
                f"difference {max_abs_diff:.2e}, allowed {atol:.0e}). This architecture cannot be "
                "exported faithfully; use the PyTorch weights instead.",
                code="onnx_mismatch",
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "path": str(target),
        "opset": opset,
        "max_abs_diff": max_abs_diff,
        "atol": atol,
        "sha256": _sha256(target),
        "bytes": target.stat().st_size,
    }


def _cpu_copy(model: nn.Module) -> nn.Module:
    """The model itself when it already lives on the CPU in float32, else a CPU float32 copy."""
    tensors = [*model.parameters(), *model.buffers()]
    on_cpu = all(t.device.type == "cpu" for t in tensors)
    if on_cpu and all(t.dtype == torch.float32 for t in tensors if t.is_floating_point()):
        return model
    return copy.deepcopy(model).to("cpu", torch.float32)


def _export(
    model: nn.Module, dummy: torch.Tensor, path: Path, opset: int, *, any_size: bool
) -> None:
    axes = {0: "batch", 2: "height", 3: "width"} if any_size else {0: "batch"}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        try:
            torch.onnx.export(
                model,
                (dummy,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                do_constant_folding=True,
            )
        except torch.onnx.errors.UnsupportedOperatorError as exc:
            raise UserError(
                f"This architecture uses an operation ONNX cannot express ({exc}).",
                code="onnx_unsupported",
            ) from exc


def _run_onnx(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch.astype(np.float32)})
    return np.asarray(output, dtype=np.float32)


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
