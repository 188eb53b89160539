"""Progress off a terminal: one line per epoch, at most one every ``progress_interval`` seconds inside one."""

from __future__ import annotations

from lightning_cnn.__main__ import main
from tests.helpers.runs import QUICK

# QUICK turns the progress display off; these tests are about it
_OFF = QUICK.index("--trainer.enable_progress_bar")
SHOWN = QUICK[:_OFF] + QUICK[_OFF + 2 :]


def fit(capsys, mnist_dir, tmp_path, *args) -> tuple[list[str], str]:
    """Train in this process (its output is captured: not a terminal); the lines written to stdout, and stderr."""
    capsys.readouterr()
    main([
        "fit", "--model", "LeNet5", "--data.data_dir", str(mnist_dir), *SHOWN, "--trainer.default_root_dir",
        str(tmp_path), "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1",
        "--preview.num_images", "0", "--report.enabled", "false", "--checkpoint.save_top_k", "0",
        "--checkpoint.save_last", "false", *args,
    ])  # fmt: skip
    captured = capsys.readouterr()
    return captured.out.splitlines(), captured.err


def test_output_that_is_not_a_terminal_gets_one_line_per_epoch(mnist_dir, tmp_path, capsys):
    out, err = fit(capsys, mnist_dir, tmp_path, "--trainer.max_epochs", "3")
    epochs = [line for line in out if line.startswith("epoch ")]
    assert [line.split(" done ")[0] for line in epochs] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"], out
    assert all("val/acc " in line and "train/loss " in line for line in epochs)
    # each line holds its own epoch's training accuracy, which the module logs after the callbacks' epoch end
    assert all("train/acc " in line for line in epochs), out
    assert len(out) == 3 and "\r" not in "".join(out) + err  # nothing else on stdout, no bar redraws
    assert len(err.splitlines()) < 15  # the few header lines


def test_a_long_epoch_gets_a_line_at_most_every_interval(mnist_dir, tmp_path, capsys):
    every_batch, _ = fit(capsys, mnist_dir, tmp_path, "--trainer.max_epochs", "1", "--progress_interval", "0")
    assert [line.split("  ")[0] for line in every_batch] == [
        "epoch 1/1 batch 1/3", "epoch 1/1 batch 2/3", "epoch 1/1 batch 3/3", "epoch 1/1 done"
    ]  # fmt: skip
    rarely, _ = fit(capsys, mnist_dir, tmp_path, "--trainer.max_epochs", "1", "--progress_interval", "3600")
    assert [line.split("  ")[0] for line in rarely] == ["epoch 1/1 done"]
