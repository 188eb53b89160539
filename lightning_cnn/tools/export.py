"""``python -m lightning_cnn export``: a trained run as an ONNX file (and optionally TorchScript), checked against
PyTorch with onnxruntime.

The exported model includes the run's normalization: it takes float32 images in [0, 1], shaped
(batch, channels, height, width) at the training size, any batch size, and returns logits (apply softmax for
probabilities). A run calibrated by ``lightning-cnn calibrate`` returns its logits divided by the stored
temperature T (built in too, so their softmax is the calibrated probabilities) unless ``--calibrated false``. A
``<output>.json`` beside it records the classes, the input shape, the mean/std and the temperature that are built in.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lightning_cnn.data.base import normalize
from lightning_cnn.errors import LightningCnnError
from lightning_cnn.inference.calibration import applied_temperature
from lightning_cnn.inference.trained import Preprocessing, load_trained
from lightning_cnn.tools.options import ToolParser, add_calibrated_option, add_trust_option

TOLERANCE = 1e-4  # largest absolute logit difference accepted between the exported model and PyTorch


class ExportError(LightningCnnError):
    """The exported model gives other outputs than the PyTorch model."""


class NormalizedClassifier(nn.Module):
    """The network with the run's normalization in front and its temperature behind: float images in [0, 1] →
    logits / temperature (1: the raw logits, and no division in the graph)."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], temperature: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.temperature = float(temperature)

    def forward(self, images: Tensor) -> Tensor:
        logits = self.net(normalize(images, self.mean, self.std))
        return logits / self.temperature if self.temperature != 1.0 else logits


def export_onnx(module: nn.Module, example: Tensor, path: Path) -> None:
    """``module`` as ONNX through torch.export (``dynamo=True``), with a dynamic batch axis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes={"images": {0: batch}},
            verbose=False,
        )
        program.save(str(path))


class _quiet_exporter:  # noqa: N801 - used as a context manager
    """torch.onnx's exporter logs each step at INFO and prints its progress; keep the tool's output short."""

    def __enter__(self) -> None:
        self.level = logging.getLogger("torch.onnx").level
        logging.getLogger("torch.onnx").setLevel(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("torch.onnx").setLevel(self.level)


def onnx_max_diff(module: nn.Module, path: Path, images: Tensor) -> float:
    """Largest absolute difference between onnxruntime's outputs for ``images`` and ``module``'s."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    with torch.no_grad():
        expected = module(images).numpy()
    return float(np.abs(got - expected).max())


def export_torchscript(module: nn.Module, example: Tensor, path: Path, images: Tensor) -> float:
    """``module`` traced to TorchScript at ``path``; returns the largest difference of the reloaded file's outputs."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path))
        return float((loaded(images) - module(images)).abs().max())


def export_model(
    net: nn.Module,
    preprocessing: Preprocessing,
    output: Path,
    torchscript: bool = False,
    check_batch: int = 3,
    temperature: float | None = None,
) -> dict[str, float]:
    """Export ``net`` with its normalization (and a calibrated run's ``temperature``, dividing its logits) to
    ``output`` (ONNX), a JSON of its preprocessing beside it, and optionally TorchScript; check them on a random batch
    of ``check_batch`` images (another size than the example, so the dynamic batch axis is exercised). Raises
    ``ExportError`` past ``TOLERANCE``."""
    module = NormalizedClassifier(net, preprocessing.mean, preprocessing.std, temperature or 1.0).eval()
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, *preprocessing.input_shape, generator=generator)
    images = torch.rand(check_batch, *preprocessing.input_shape, generator=generator)
    export_onnx(module, example, output)
    diffs = {"onnx": onnx_max_diff(module, output, images)}
    if torchscript:
        diffs["torchscript"] = export_torchscript(module, example, output.with_suffix(".pt"), images)
    metadata = {
        "input": "float32 images in [0, 1], (batch, channels, height, width); normalization is built in",
        "output": "logits (apply softmax for probabilities), one per class in this order"
        if temperature is None
        else "calibrated logits: the network's logits divided by the temperature (apply softmax for calibrated"
        " probabilities), one per class in this order",
        "temperature": temperature,
        "input_shape": list(preprocessing.input_shape),
        "mean": list(preprocessing.mean),
        "std": list(preprocessing.std),
        "classes": list(preprocessing.classes),
        "max_abs_diff_vs_pytorch": diffs,
    }
    output.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")
    for kind, diff in diffs.items():
        if not diff <= TOLERANCE:
            raise ExportError(
                f"the {kind} export of {output.stem} differs from PyTorch by {diff:.3g} (more than {TOLERANCE:g});"
                " the files were written but should not be trusted"
            )
    return diffs


def main(argv: Sequence[str]) -> None:
    parser = ToolParser(
        prog="lightning-cnn export",
        description="Export a trained run to ONNX (dynamic batch axis, normalization built in: input float32 "
        "images in [0, 1] at the training size, output logits, divided by the temperature of a calibrated run) and"
        " check it against PyTorch with onnxruntime.",
    )
    parser.add_argument(
        "--ckpt_path", required=True, help="a checkpoint file, or a run folder (its best checkpoint, else last.ckpt)"
    )
    parser.add_argument("--output", default="model.onnx", help="the ONNX file (default: %(default)s)")
    add_trust_option(parser)
    parser.add_argument("--torchscript", action="store_true", help="also write a traced TorchScript file (.pt)")
    parser.add_argument("--check_batch", type=int, default=3, help="images in the check batch (default: 3)")
    add_calibrated_option(parser)
    args = parser.parse_args(list(argv))
    if args.check_batch < 1:
        parser.error(f"--check_batch must be at least 1, got {args.check_batch}")
    trained = load_trained(args.ckpt_path, "cpu", trust=args.trust_checkpoint)
    output = Path(args.output)
    temperature, note = applied_temperature(trained.checkpoint_path, args.calibrated)
    if note:
        sys.stderr.write(note + "\n")
    diffs = export_model(
        trained.model.net, trained.preprocessing, output, args.torchscript, args.check_batch, temperature
    )
    if getattr(trained.model, "multi_label", False):  # one logit per label: say so, with the tuned thresholds
        metadata = json.loads(output.with_suffix(".json").read_text())
        metadata["output"] = (
            "logits, one per label in this order: apply sigmoid, a label is predicted above its threshold"
        )
        metadata["thresholds"] = [round(float(t), 6) for t in trained.model.label_thresholds]
        output.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")
    shape = "×".join(map(str, trained.preprocessing.input_shape))
    print(f"exported {trained.checkpoint_path} ({type(trained.model).__name__}, input N×{shape}) to {output}")
    for kind, diff in diffs.items():
        target = output if kind == "onnx" else output.with_suffix(".pt")
        print(f"{kind}: {target}, max abs diff vs PyTorch on {args.check_batch} images: {diff:.2e}")
    print(f"preprocessing and classes: {output.with_suffix('.json')}")
    sys.stdout.flush()
