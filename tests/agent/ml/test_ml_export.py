"""ONNX export: onnxruntime reproduces PyTorch, for any batch size, or nothing is written."""

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchvision
from torch import nn

from pollen_agent.errors import UserError
from pollen_agent.ml.export import export_onnx


class TinyCNN(nn.Module):
    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BatchSizeDependent(TinyCNN):
    """A model whose tracer sees the batch size as a constant: ONNX freezes it at export."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + float(x.shape[0])


def _onnx_logits(path: str, batch: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": batch.numpy()})[0]


@pytest.mark.parametrize(
    ("make_model", "in_channels", "input_size"),
    [
        (lambda: torchvision.models.resnet18(num_classes=3), 3, 64),
        (lambda: TinyCNN(), 3, 32),
        (lambda: TinyCNN(in_channels=1), 1, 28),
    ],
    ids=["resnet18", "tiny", "tiny-grey"],
)
def test_onnx_matches_pytorch(tmp_path, make_model, in_channels, input_size):
    torch.manual_seed(0)
    model = make_model().eval()
    path = tmp_path / "model.onnx"
    report = export_onnx(model, input_size=input_size, in_channels=in_channels, path=path)

    assert report["path"] == str(path) and path.exists()
    assert report["opset"] == 17
    assert 0.0 <= report["max_abs_diff"] <= 1e-4
    assert len(report["sha256"]) == 64
    onnx.checker.check_model(str(path))
    batch = torch.randn(5, in_channels, input_size, input_size)
    with torch.no_grad():
        expected = model(batch).numpy()
    np.testing.assert_allclose(_onnx_logits(str(path), batch), expected, atol=1e-4, rtol=0)


def test_batch_axis_is_dynamic(tmp_path):
    path = tmp_path / "tiny.onnx"
    export_onnx(TinyCNN(), input_size=16, path=path)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [3, 16, 16]


def test_model_in_training_mode_is_exported_in_eval_mode_and_left_training(tmp_path):
    torch.manual_seed(0)
    model = TinyCNN().train()
    with torch.no_grad():
        model(torch.randn(8, 3, 16, 16))  # move the batch-norm running statistics
    report = export_onnx(model, input_size=16, path=tmp_path / "m.onnx")
    assert report["max_abs_diff"] <= 1e-4
    assert model.training and model.features[1].training


def test_mismatch_raises_and_leaves_no_file(tmp_path):
    path = tmp_path / "bad.onnx"
    with warnings.catch_warnings(), pytest.raises(UserError) as caught:
        warnings.simplefilter("ignore")  # the tracer warns about the constant, as expected
        export_onnx(BatchSizeDependent(), input_size=16, path=path)
    assert caught.value.code == "onnx_mismatch"
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_outlining_model_exports_for_any_image_size(tmp_path):
    """A U-Net reads whole images and windows of any size that is a multiple of 32: its ONNX
    file has dynamic height and width, checked at a size other than the one exported."""
    from pollen_agent.ml.zoo import build_model

    torch.manual_seed(0)
    model = build_model("unet_efficientnet_lite0", 2, source="random").eval()
    path = tmp_path / "unet.onnx"
    report = export_onnx(model, input_size=64, path=path, any_size=True)
    assert report["max_abs_diff"] <= report["atol"]
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in (dims[0], dims[2], dims[3])] == ["batch", "height", "width"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = torch.randn(1, 3, 96, 128)
    (logits,) = session.run(["logits"], {"input": image.numpy()})
    with torch.no_grad():
        expected = model(image).numpy()
    assert logits.shape == (1, 2, 96, 128)
    assert np.array_equal(logits.argmax(1), expected.argmax(1)) or (
        np.mean(logits.argmax(1) == expected.argmax(1)) > 0.999
    )
