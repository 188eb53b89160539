"""The speed runs' tricks as options any recipe can use: Lookahead over any optimizer (resumed exactly), a
label-smoothing schedule, and a patch-whitening init of any model's first conv (frozen on request)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_cnn.checkpoints import read_checkpoint
from lightning_cnn.cli import cli_main
from lightning_cnn.errors import ConfigError
from lightning_cnn.models.whitening import whitening_filters
from lightning_cnn.training.label_smoothing import LabelSmoothingSchedule
from lightning_cnn.training.lookahead import Lookahead
from lightning_cnn.training.whitening_init import WhiteningInit
from tests.helpers.runs import QUICK

CALLBACKS = Path(__file__).parent.parent / "configs" / "callbacks"


def fit(root: Path, mnist_dir: Path, epochs: int, *extra: str) -> Path:
    """A run of ``epochs`` epochs of 3 batches on the tiny MNIST (LeNet-5 unless ``extra`` says); its folder."""
    cli_main(
        [
            "fit", "--model", "LeNet5", *extra, "--data.data_dir", str(mnist_dir), *QUICK,
            "--trainer.max_epochs", str(epochs), "--trainer.limit_train_batches", "3",
            "--trainer.limit_val_batches", "1",
            "--trainer.default_root_dir", str(root), "--preview.num_images", "0", "--test_after_fit", "false",
        ]
    )  # fmt: skip
    return root / "lightning_logs" / "version_0"


def first_conv_weight(run: Path) -> torch.Tensor:
    """The weights of the first conv (the first 4-D tensor) of a run's last checkpoint."""
    state = read_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    return next(value for value in state.values() if value.dim() == 4)


def test_lookahead_moves_the_weights_alpha_of_the_way_every_k_steps():
    layer = nn.Linear(2, 1)
    callback = Lookahead(k=2, alpha=0.25)
    module = SimpleNamespace(parameters=layer.parameters)
    callback.on_train_start(None, module)  # type: ignore[arg-type]
    start = layer.weight.detach().clone()
    for step in (1, 2):
        with torch.no_grad():
            layer.weight.add_(1.0)  # what an optimizer step did
        callback.on_train_batch_end(SimpleNamespace(global_step=step), module)  # type: ignore[arg-type]
    # after step 1 nothing happened; after step 2 the weights are slow + 0.25 × (fast - slow)
    assert torch.allclose(layer.weight, start + 0.25 * 2.0)
    assert torch.allclose(callback.slow[0], layer.weight)


def test_lookahead_run_resumes_exactly(mnist_dir, tmp_path):
    fragment = ["--config", str(CALLBACKS / "lookahead.yaml"), "--trainer.callbacks.init_args.k", "2"]
    whole = fit(tmp_path / "whole", mnist_dir, 2, *fragment)
    half = fit(tmp_path / "half", mnist_dir, 1, *fragment)
    cli_main(
        ["fit", "--config", str(half / "config.yaml"), "--trainer.max_epochs", "2", "--ckpt_path", "last"]
    )  # the same folder goes on: version_0's config names it
    resumed = sorted((tmp_path / "half" / "lightning_logs").glob("version_*"))[-1]
    a = read_checkpoint(whole / "checkpoints" / "last.ckpt")
    b = read_checkpoint(resumed / "checkpoints" / "last.ckpt")
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    slow = a["callbacks"]["Lookahead"]["slow"]
    assert len(slow) == len([v for v in a["state_dict"].values() if v.is_floating_point()])


def test_label_smoothing_schedule_goes_linearly_from_start_to_end(mnist_dir, tmp_path):
    schedule = LabelSmoothingSchedule(start=0.3, end=0.1)
    assert schedule.value_at(0, 11) == pytest.approx(0.3)
    assert schedule.value_at(5, 11) == pytest.approx(0.2)
    assert schedule.value_at(10, 11) == pytest.approx(0.1)
    run = fit(tmp_path, mnist_dir, 2, "--config", str(CALLBACKS / "label_smoothing.yaml"))
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_whitening_filters_give_patches_of_identity_covariance():
    images = torch.randn(64, 3, 12, 12) @ torch.randn(12, 12) + 0.5  # correlated neighbouring pixels
    filters, mean = whitening_filters(images, 3, eps=1e-6)
    assert filters.shape == (27, 3, 3, 3)
    out = F.conv2d(images, filters, -(filters.flatten(1) @ mean)).transpose(0, 1).flatten(1)
    assert torch.allclose(out.mean(1), torch.zeros(27), atol=1e-3)
    assert torch.allclose(out @ out.T / out.shape[1], torch.eye(27), atol=2e-2)


def test_whitening_init_sets_the_first_conv_and_freeze_keeps_it(mnist_dir, tmp_path):
    fragment = ["--config", str(CALLBACKS / "whitening.yaml"), "--trainer.callbacks.init_args.freeze", "true"]
    run = fit(tmp_path, mnist_dir, 1, *fragment, "--seed_everything", "3")
    weights = first_conv_weight(run)
    # 6 filters of 1 × 5 × 5: the 6 patch directions of largest variance, of unit norm × 1/sqrt(eigenvalue) each:
    # orthogonal to each other, and not the random init any more
    gram = weights.flatten(1) @ weights.flatten(1).T
    assert torch.allclose(gram - torch.diag(gram.diag()), torch.zeros(6, 6), atol=1e-3 * gram.diag().max())
    untouched = fit(tmp_path / "plain", mnist_dir, 1, "--seed_everything", "3")
    assert not torch.equal(weights, first_conv_weight(untouched))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Lookahead(k=0), "Lookahead.k"),
        (lambda: Lookahead(alpha=0.0), "Lookahead.alpha"),
        (lambda: LabelSmoothingSchedule(start=1.0), "LabelSmoothingSchedule.start"),
        (lambda: WhiteningInit(eps=float("nan")), "WhiteningInit.eps"),
    ],
)
def test_bad_settings_are_refused_with_the_option_named(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_whitening_init_refuses_a_model_without_a_conv(mnist_dir, run_cli, tmp_path):
    code, err = run_cli(
        "fit", "--model", "MLP", "--config", CALLBACKS / "whitening.yaml", "--data.data_dir", mnist_dir, *QUICK,
        "--trainer.fast_dev_run", "true", "--trainer.default_root_dir", tmp_path,
    )  # fmt: skip
    assert code == 2 and "WhiteningInit: MLP has no Conv2d" in err, err
