"""Grad-CAM heatmaps: where a convolutional model looked when it chose a class.

Without an explicit layer, the heatmap comes from the last feature map a convolution produced
before the head, followed through any shape-preserving layers after it (batch norm, activation),
so ResNet uses the output of its last residual stage and EfficientNet its final activated
features. Models whose last convolution feeds attention layers (vision transformers) have no
meaningful convolutional feature map to explain and are refused with ``heatmap_unsupported``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from pollen_agent.errors import UserError
from pollen_agent.ml.inference import eval_mode, output_logits

Method = Literal["gradcam", "gradcam++"]

_UNSUPPORTED = (
    "Heatmaps are available only for convolutional models; this model's architecture "
    "has no convolutional feature map to show."
)


def gradcam(
    model: nn.Module,
    input_tensor: torch.Tensor,
    *,
    class_index: int | None = None,
    target_layer: nn.Module | str | None = None,
    method: Method = "gradcam",
) -> np.ndarray:
    """Heatmap (H, W) float32 in [0, 1] for one normalised input of shape (1, C, H, W).

    ``class_index`` defaults to the predicted class. ``target_layer`` is a module of ``model`` or
    its dotted name; by default it is found automatically. ``method="gradcam++"`` weights
    pixels of each feature map by higher-order gradients, which helps when a class appears in
    several places. The model is left exactly as it was: hooks are removed, flags restored, and
    no parameter ``.grad`` is written.
    """
    if input_tensor.ndim != 4 or input_tensor.shape[0] != 1:
        raise ValueError(f"gradcam needs one input of shape (1, C, H, W), got {input_tensor.shape}")
    indices = None if class_index is None else [class_index]
    maps = gradcam_batch(
        model, input_tensor, class_indices=indices, target_layer=target_layer, method=method
    )
    heatmap: np.ndarray = maps[0]
    return heatmap


def gradcam_batch(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    class_indices: list[int] | None = None,
    target_layer: nn.Module | str | None = None,
    method: Method = "gradcam",
) -> np.ndarray:
    """Heatmaps (N, H, W) for a batch, one backward pass for all (samples are independent in eval)."""
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        x = inputs.detach().clone().requires_grad_(True)
        activation, logits = _forward_capturing(model, x, target_layer)
        scores = _class_scores(logits, class_indices)
        (grads,) = torch.autograd.grad(scores.sum(), activation)
        cams = _cam(activation.detach().float(), grads.detach().float(), method)
    cams = F.interpolate(
        cams[:, None], size=inputs.shape[-2:], mode="bilinear", align_corners=False
    )
    return _normalise_each(cams[:, 0]).cpu().numpy().astype(np.float32)


def find_target_layer(model: nn.Module, input_tensor: torch.Tensor) -> nn.Module:
    """The layer whose output ``gradcam`` would explain by default for this input shape."""
    with eval_mode(model), torch.no_grad():
        tracker = _Tracker(model)
        try:
            model(input_tensor)
        finally:
            tracker.remove()
    return tracker.chosen_module()


def _forward_capturing(
    model: nn.Module, x: torch.Tensor, target_layer: nn.Module | str | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if target_layer is None:
        tracker = _Tracker(model)
        try:
            logits = output_logits(model(x))
        finally:
            tracker.remove()
        return tracker.chosen_activation(), logits
    module = model.get_submodule(target_layer) if isinstance(target_layer, str) else target_layer
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(_first_tensor(out)))
    try:
        logits = output_logits(model(x))
    finally:
        handle.remove()
    if not captured or captured[-1].ndim != 4:
        raise UserError(
            "The chosen heatmap layer does not produce a 2-D feature map.",
            code="heatmap_unsupported",
        )
    return captured[-1], logits


@dataclass
class _Tracker:
    """Forward hooks on every module, recording which 4-D outputs could carry the heatmap."""

    model: nn.Module
    handles: list[RemovableHandle] = field(default_factory=list)
    best: tuple[nn.Module, torch.Tensor] | None = None
    attention_after_best: bool = False

    def __post_init__(self) -> None:
        has_conv = {
            m: any(isinstance(s, nn.Conv2d) for s in m.modules()) for m in self.model.modules()
        }
        for module in self.model.modules():
            hook = self._make_hook(has_conv[module], _is_attention(module))
            self.handles.append(module.register_forward_hook(hook))

    def _make_hook(self, contains_conv: bool, is_attention: bool) -> Callable[..., None]:
        def hook(module: nn.Module, _inputs: object, output: object) -> None:
            if is_attention and self.best is not None:
                self.attention_after_best = True
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                return
            if output.shape[-2] * output.shape[-1] <= 1:
                return
            same_shape = self.best is not None and output.shape == self.best[1].shape
            if contains_conv or same_shape:
                self.best = (module, output)
                self.attention_after_best = False

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def chosen_activation(self) -> torch.Tensor:
        return self._chosen()[1]

    def chosen_module(self) -> nn.Module:
        return self._chosen()[0]

    def _chosen(self) -> tuple[nn.Module, torch.Tensor]:
        if self.best is None or self.attention_after_best:
            raise UserError(_UNSUPPORTED, code="heatmap_unsupported")
        return self.best


def _is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or type(module).__name__.endswith("Attention")


def _first_tensor(output: object) -> torch.Tensor:
    if isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise UserError(
            "The chosen heatmap layer does not output a tensor.", code="heatmap_unsupported"
        )
    return output


def _class_scores(logits: torch.Tensor, class_indices: list[int] | None) -> torch.Tensor:
    """Per-sample score to explain; a single-logit model's class 0 is the negated logit."""
    logits = logits.float()
    if logits.shape[1] == 1:
        positive = logits[:, 0]
        if class_indices is None:
            return positive.abs()  # explains whichever class the sigmoid chose
        signs = torch.tensor([1.0 if c == 1 else -1.0 for c in class_indices], device=logits.device)
        return positive * signs
    if class_indices is None:
        chosen = logits.argmax(dim=1)
    else:
        chosen = torch.tensor(class_indices, device=logits.device)
        if chosen.numel() != logits.shape[0] or int(chosen.max()) >= logits.shape[1]:
            raise ValueError(
                f"class indices {class_indices} do not fit logits {tuple(logits.shape)}"
            )
    return logits.gather(1, chosen.view(-1, 1))[:, 0]


def _cam(activation: torch.Tensor, grads: torch.Tensor, method: Method) -> torch.Tensor:
    """Weighted channel sum, ReLU'd: (N, K, h, w) x 2 -> (N, h, w)."""
    if method == "gradcam":
        weights = grads.mean(dim=(2, 3), keepdim=True)
    elif method == "gradcam++":
        # Chattopadhyay et al. 2018, with the exponential-score closed form for the alphas.
        g2, g3 = grads.pow(2), grads.pow(3)
        denominator = 2 * g2 + activation.sum(dim=(2, 3), keepdim=True) * g3
        alphas = g2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        weights = (alphas * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
    else:
        raise ValueError(f"unknown heatmap method {method!r}")
    return F.relu((weights * activation).sum(dim=1))


def _normalise_each(cams: torch.Tensor) -> torch.Tensor:
    flat = cams.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1)
    span = (flat.max(dim=1).values.view(-1, 1, 1) - low).clamp_min(1e-12)
    out = (cams - low) / span
    return torch.where(span > 1e-12, out, torch.zeros_like(out)).clamp_(0.0, 1.0)
