"""export: every registered model to ONNX (dynamic batch, normalization built in) matches PyTorch within 1e-4 in
onnxruntime; the command exports a trained run, with TorchScript and a JSON of its preprocessing."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from lightning_cnn.__main__ import main
from lightning_cnn.data.base import normalize
from lightning_cnn.inference.trained import Preprocessing, load_trained
from lightning_cnn.models import MODELS
from lightning_cnn.tools.export import TOLERANCE, export_model
from tests.helpers.runs import fit_tiny_run

GREY = Preprocessing((1, 28, 28), (0.1307,), (0.3081,), tuple(str(i) for i in range(10)))
RGB = Preprocessing((3, 32, 32), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), tuple(f"c{i}" for i in range(10)))


# The CIFAR ResNets differ only in depth: the shallowest and the deepest stand for the others.
EXPORTED = sorted(name for name in MODELS if name not in ("ResNet32", "ResNet44"))


def calibrate_batch_norm(model: torch.nn.Module, prep: Preprocessing) -> torch.nn.Module:
    """Batch-norm running statistics of one random batch, normalized as the exported model normalizes its input,
    as a trained network has statistics of its data: with the initial ones (mean 0, variance 1) a deep untrained
    ResNet's logits grow to hundreds, and float rounding with them."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: after one batch, that batch's statistics
    with torch.no_grad():
        model.train()(normalize(torch.rand(16, *prep.input_shape), prep.mean, prep.std))
    return model.eval()


@pytest.mark.parametrize("name", EXPORTED)
def test_every_model_exports_within_tolerance(name, tmp_path):
    torch.manual_seed(0)
    prep = RGB if name == "ResNet18" else GREY  # one shape each keeps the test short; ResNet18 on its CIFAR stem
    model = calibrate_batch_norm(MODELS[name](num_classes=10, input_shape=prep.input_shape), prep)
    diffs = export_model(model.net, prep, tmp_path / f"{name}.onnx", check_batch=3)
    assert diffs["onnx"] <= TOLERANCE
    # the dynamic batch axis: one image and five give the PyTorch outputs too
    session = onnxruntime.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        images = torch.rand(batch, *prep.input_shape)
        (got,) = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            expected = model(normalize(images, prep.mean, prep.std)).numpy()
        # float rounding grows with the logits: the tolerance is relative to their scale past 1
        assert np.abs(got - expected).max() <= TOLERANCE * max(1.0, float(np.abs(expected).max()))


def test_export_command(mnist_dir, tmp_path, capsys):
    data = ["--data", "MNISTDataModule", "--data.data_dir", str(mnist_dir), "--data.download", "false"]
    run = fit_tiny_run(tmp_path / "runs", data)
    out = tmp_path / "out" / "lenet.onnx"
    capsys.readouterr()
    main(["export", "--ckpt_path", str(run), "--output", str(out), "--torchscript"])
    printed = capsys.readouterr().out
    assert f"onnx: {out}, max abs diff vs PyTorch on 3 images: " in printed and "torchscript: " in printed
    metadata = json.loads(out.with_suffix(".json").read_text())
    assert metadata["input_shape"] == [1, 28, 28] and metadata["mean"] == [0.1307] and len(metadata["classes"]) == 10
    assert metadata["max_abs_diff_vs_pytorch"]["onnx"] <= TOLERANCE
    assert metadata["max_abs_diff_vs_pytorch"]["torchscript"] <= TOLERANCE
    # the exported file gives the trained model's probabilities for raw [0, 1] images
    trained = load_trained(run)
    pixels = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": (pixels.float() / 255).numpy()})
    expected = trained.probabilities(pixels).numpy()
    assert np.abs(torch.from_numpy(logits).softmax(1).numpy() - expected).max() < 1e-5
    loaded = torch.jit.load(str(out.with_suffix(".pt")))
    assert torch.allclose(loaded(pixels.float() / 255).softmax(1), torch.from_numpy(expected), atol=1e-5)

    # an output under a file, or a folder as the output: the reason and what to do about that reason
    for output, advice in [(out / "m.onnx", "a file stands where a folder"), (out.parent, "give the path of")]:
        with pytest.raises(SystemExit):
            main(["export", "--ckpt_path", str(run), "--output", str(output)])
        (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
        assert line.startswith("error: ") and advice in line, line


def test_export_of_a_missing_checkpoint_is_one_line(run_cli, tmp_path):
    code, err = run_cli("export", "--ckpt_path", tmp_path / "nothing.ckpt")
    assert code == 2 and err.count("\n") == 1 and "neither a checkpoint file nor a run folder" in err
